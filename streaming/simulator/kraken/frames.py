"""Kraken spot WebSocket v2 messages rendered from the synthetic market, as JSON text.

What ``wss://ws.kraken.com/v2`` sends, in Kraken's key order: market data
``{"channel", "type", "data": [...]}`` (``trade``, ``ticker``, ``book``), the bare
``{"channel":"heartbeat"}``, and, keys sorted, the ``status`` message and the answers to
requests ``{"method", "result", "success", "time_in", "time_out"}`` (``error`` and ``symbol``
instead of ``result`` when refused, ``req_id`` echoed when given). Kraken's conventions, kept
exactly:

- prices and quantities are JSON *numbers* written with the pair's fixed number of decimals
  (:class:`Pair`), trailing zeros included (``"qty":0.00123000``): the book checksum is computed
  over those very digits;
- times are RFC 3339 in UTC with six fraction digits (``2024-03-01T18:00:00.123456Z``);
- a trade's ``side`` is the taker's, its ``trade_id`` one more than the pair's previous trade;
- book levels are ``{"price", "qty"}`` with absolute quantities (``0`` removes the level), bids
  best (highest) first, asks best (lowest) first, and every book message carries ``checksum``:
  Kraken's CRC32 of the top 10 levels (:func:`book_checksum`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from streaming.simulator.tape import E8, Instrument

MessageType = Literal["snapshot", "update"]
Level = tuple[str, str]
"""A rendered book level: (price text, quantity text)."""

QTY_DECIMALS = 8  # Kraken writes base quantities with 8 decimals (its pairs' lot_decimals)
MIN_PRICE_DECIMALS = 1  # every Kraken price has a fraction part (62016.0, not 62016)
CHECKSUM_LEVELS = 10
QUOTE_SYMBOLS = {"USD": "USDT"}
"""Kraken quote currency -> the synthetic market's: its symbols are Binance's, where the US
dollar is tether, so ``BTC/USD`` trades the tape of ``BTCUSDT``."""
_SYMBOL_QUOTES = ("USDT", "USDC", "EUR", "GBP", "BTC", "ETH")
_PAIR = re.compile(r"([A-Z0-9]{2,10})/([A-Z0-9]{2,10})").fullmatch
_EPOCH = dt.datetime(1970, 1, 1)
HEARTBEAT = '{"channel":"heartbeat"}'


# -- pairs ----------------------------------------------------------------------------------------
def symbol_of_pair(pair: str) -> str | None:
    """The synthetic symbol a Kraken pair trades (``BTC/USD`` -> ``BTCUSDT``, ``ETH/BTC`` ->
    ``ETHBTC``), None when ``pair`` is not spelled ``BASE/QUOTE`` in upper case."""
    match = _PAIR(pair)
    if match is None:
        return None
    base, quote = match.groups()
    return base + QUOTE_SYMBOLS.get(quote, quote)


def pair_of_symbol(symbol: str) -> str | None:
    """The Kraken pair trading a synthetic symbol (``BTCUSDT`` -> ``BTC/USD``, ``ETHBTC`` ->
    ``ETH/BTC``): the inverse of :func:`symbol_of_pair`; None for a symbol quoted in none of
    USDT, USDC, EUR, GBP, BTC, ETH."""
    symbol = symbol.upper()
    aliases = {synthetic: kraken for kraken, synthetic in QUOTE_SYMBOLS.items()}
    for quote in _SYMBOL_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            pair = f"{symbol[: -len(quote)]}/{aliases.get(quote, quote)}"
            return pair if symbol_of_pair(pair) == symbol else None
    return None


def _decimals_of(value_e8: int) -> int:
    """Decimals needed to write a positive multiple of 1e-8 exactly (1e-8: 8, 0.1: 1, 5: 0)."""
    decimals = 8
    while decimals and value_e8 % 10 == 0:
        value_e8 //= 10
        decimals -= 1
    return decimals


def decimal_text(value_e8: int, decimals: int) -> str:
    """A multiple of 1e-8 written with exactly ``decimals`` decimals (the digits past them must
    be zero): ``decimal_text(123_000, 8) == "0.00123000"``, negatives signed."""
    sign, value_e8 = ("-", -value_e8) if value_e8 < 0 else ("", value_e8)
    whole, fraction = divmod(value_e8, E8)
    if not decimals:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:08d}"[: len(sign) + len(str(whole)) + 1 + decimals]


@dataclass(frozen=True, slots=True)
class Pair:
    """A Kraken pair over a synthetic symbol: its name, the symbol whose tape it trades, and how
    its numbers are written (the tick's decimals, at least one; 8 for quantities)."""

    name: str
    symbol: str
    tick_e8: int
    step_e8: int
    price_decimals: int
    qty_decimals: int = QTY_DECIMALS

    @classmethod
    def of(cls, name: str, instrument: Instrument) -> Pair:
        """The pair ``name`` trading ``instrument``'s tape."""
        decimals = max(MIN_PRICE_DECIMALS, _decimals_of(instrument.tick_e8))
        return cls(name, instrument.symbol, instrument.tick_e8, instrument.step_e8, decimals)

    def price(self, ticks: int) -> str:
        """A price in ticks as Kraken writes it."""
        return decimal_text(int(ticks) * self.tick_e8, self.price_decimals)

    def qty(self, steps: int) -> str:
        """A quantity in lot steps as Kraken writes it."""
        return decimal_text(int(steps) * self.step_e8, self.qty_decimals)


# -- times ----------------------------------------------------------------------------------------
def rfc3339_us(time_us: int) -> str:
    """µs since the epoch as Kraken writes times: ``2024-03-01T18:00:00.123456Z``."""
    return (_EPOCH + dt.timedelta(microseconds=int(time_us))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- checksum -------------------------------------------------------------------------------------
def _checksum_text(price: str, qty: str) -> str:
    return price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")


def book_checksum(bids: Sequence[Level], asks: Sequence[Level]) -> int:
    """Kraken's book checksum: the CRC32 of the 10 best asks (lowest first) then the 10 best bids
    (highest first), each level its price then its quantity, decimal point removed and leading
    zeros stripped (``45285.2`` -> ``452852``, ``0.00100000`` -> ``100000``)."""
    text = "".join(_checksum_text(p, q) for p, q in asks[:CHECKSUM_LEVELS])
    text += "".join(_checksum_text(p, q) for p, q in bids[:CHECKSUM_LEVELS])
    return zlib.crc32(text.encode())


# -- channel messages -----------------------------------------------------------------------------
def _channel(channel: str, kind: MessageType, data: str) -> str:
    return f'{{"channel":"{channel}","type":"{kind}","data":[{data}]}}'


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One trade as the trade channel shows it."""

    trade_id: int
    price_ticks: int
    qty_steps: int
    taker_sold: bool
    time_us: int


def trade_message(pair: Pair, kind: MessageType, trades: Iterable[TradeRow]) -> str:
    """A ``trade`` message: the trades of one taker order (update) or the last 50 (snapshot),
    oldest first."""
    rows = ",".join(
        f'{{"symbol":"{pair.name}","side":"{"sell" if t.taker_sold else "buy"}",'
        f'"price":{pair.price(t.price_ticks)},"qty":{pair.qty(t.qty_steps)},'
        f'"ord_type":"market","trade_id":{t.trade_id},"timestamp":"{rfc3339_us(t.time_us)}"}}'
        for t in trades
    )
    return _channel("trade", kind, rows)


@dataclass(frozen=True, slots=True)
class DayStats:
    """The ticker's rolling 24 h figures: prices in ticks, volume in lot steps, the volume
    weighted average price in 1e-8 units."""

    last_ticks: int
    open_ticks: int
    low_ticks: int
    high_ticks: int
    volume_steps: int
    vwap_e8: int


def _rounded(value_e8: int, decimals: int) -> int:
    """``value_e8`` rounded half up to ``decimals`` decimals."""
    unit = 10 ** (8 - decimals)
    return (value_e8 + unit // 2) // unit * unit


def ticker_message(
    pair: Pair,
    kind: MessageType,
    bid: tuple[int, int],
    ask: tuple[int, int],
    stats: DayStats,
    time_us: int,
) -> str:
    """A ``ticker`` message: the best bid and ask as (ticks, steps) and the 24 h figures."""
    change_e8 = (stats.last_ticks - stats.open_ticks) * pair.tick_e8
    open_e8 = stats.open_ticks * pair.tick_e8
    # percentage points with two decimals, rounded half away from zero, in 1e-8 units
    hundredths = (abs(change_e8) * 20_000 // open_e8 + 1) // 2 if open_e8 else 0
    change_pct = decimal_text((-hundredths if change_e8 < 0 else hundredths) * 1_000_000, 2)
    vwap = decimal_text(_rounded(stats.vwap_e8, pair.price_decimals), pair.price_decimals)
    data = (
        f'{{"symbol":"{pair.name}","bid":{pair.price(bid[0])},"bid_qty":{pair.qty(bid[1])},'
        f'"ask":{pair.price(ask[0])},"ask_qty":{pair.qty(ask[1])},'
        f'"last":{pair.price(stats.last_ticks)},"volume":{pair.qty(stats.volume_steps)},'
        f'"vwap":{vwap},"low":{pair.price(stats.low_ticks)},"high":{pair.price(stats.high_ticks)},'
        f'"change":{decimal_text(change_e8, pair.price_decimals)},"change_pct":{change_pct},'
        f'"timestamp":"{rfc3339_us(time_us)}"}}'
    )
    return _channel("ticker", kind, data)


def _levels(levels: Iterable[Level]) -> str:
    return ",".join(f'{{"price":{price},"qty":{qty}}}' for price, qty in levels)


def book_snapshot(pair: Pair, bids: Sequence[Level], asks: Sequence[Level], checksum: int) -> str:
    """A ``book`` snapshot: the subscribed depth of each side, best first, and its checksum."""
    data = (
        f'{{"symbol":"{pair.name}","bids":[{_levels(bids)}],"asks":[{_levels(asks)}],'
        f'"checksum":{checksum}}}'
    )
    return _channel("book", "snapshot", data)


def book_update(
    pair: Pair, bids: Sequence[Level], asks: Sequence[Level], checksum: int, time_us: int
) -> str:
    """A ``book`` update: the levels that changed and the checksum of the book after them."""
    data = (
        f'{{"symbol":"{pair.name}","bids":[{_levels(bids)}],"asks":[{_levels(asks)}],'
        f'"checksum":{checksum},"timestamp":"{rfc3339_us(time_us)}"}}'
    )
    return _channel("book", "update", data)


def status_message(connection_id: int) -> str:
    """The ``status`` update Kraken sends first on every connection (keys sorted, as Kraken
    writes it)."""
    data = (
        f'{{"api_version":"v2","connection_id":{connection_id},"system":"online",'
        f'"version":"2.0.10"}}'
    )
    return f'{{"channel":"status","data":[{data}],"type":"update"}}'


# -- method answers -------------------------------------------------------------------------------
def method_answer(
    method: str | None,
    time_in_us: int,
    time_out_us: int,
    *,
    result: dict[str, object] | None = None,
    error: str | None = None,
    symbol: str | None = None,
    req_id: int | None = None,
    success: bool = True,
) -> str:
    """The answer to a request (``subscribe``, ``unsubscribe``; ``pong`` for ``ping``): its
    ``result`` when it succeeded, ``error`` (and the ``symbol`` it concerns) when it was
    refused. Kraken writes these answers with their keys sorted, ``result``'s too."""
    fields: dict[str, object | None] = {
        "method": method,
        "req_id": req_id,
        "result": result if error is None else None,
        "error": error,
        "symbol": symbol if error is not None else None,
        "success": (error is None) if success else None,
        "time_in": rfc3339_us(time_in_us),
        "time_out": rfc3339_us(time_out_us),
    }
    answer = {key: value for key, value in fields.items() if value is not None}
    return json.dumps(answer, separators=(",", ":"), sort_keys=True)
