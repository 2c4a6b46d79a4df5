"""Binance spot wire types: frozen msgspec structs that keep Binance's exact field names.

Field names are Binance's own, single letters included and case-sensitive (``t`` trade id,
``T`` trade time, ``b``/``B`` bid price/quantity, ``u``/``U`` update ids). Prices and
quantities stay the decimal strings Binance sends. Unknown fields are ignored, so additions
to the API do not break decoding. Timestamps are Binance's milliseconds here; records.py
holds the normalised, nanosecond domain types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# Binance always sends unsigned plain decimals ("61837.63000000"); anything else is bad data.
# Possessive quantifiers (no backtracking) keep the per-message check cheap.
DECIMAL_PATTERN = r"[0-9]++(?:\.[0-9]++)?"
# The hot stream events keep plain ``str`` and parse.py checks all of a message's decimals with
# one regex call, because msgspec's per-field pattern check costs one call per field.
# \Z rather than $, which would let a trailing newline through.
DecimalText = Annotated[str, msgspec.Meta(pattern=f"^{DECIMAL_PATTERN}\\Z")]
# Ids and millisecond times must fit the int64 columns they land in.
WireInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
PriceLevels = tuple[tuple[str, str], ...]
CheckedPriceLevels = tuple[tuple[DecimalText, DecimalText], ...]


class StreamEnvelope(msgspec.Struct, frozen=True, gc=False):
    """Combined-stream frame ``{"stream": "btcusdt@trade", "data": {...}}``; data stays raw."""

    stream: str
    data: msgspec.Raw


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """``<symbol>@trade`` payload.

    ``X`` and ``M`` are read only to tell a USD-M futures trade (execution type ``X``, no ``M``)
    from a spot one, which parse.py then refuses.
    """

    e: Literal["trade"]
    E: WireInt
    s: str
    t: WireInt
    p: str
    q: str
    T: WireInt
    m: bool
    X: Any = None
    M: Any = None


class AggTradeEvent(msgspec.Struct, frozen=True, gc=False):
    """``<symbol>@aggTrade`` payload."""

    e: Literal["aggTrade"]
    E: WireInt
    s: str
    a: WireInt
    p: str
    q: str
    f: WireInt
    l: WireInt  # noqa: E741 - Binance's name for the last trade id
    T: WireInt
    m: bool


class BookTickerEvent(msgspec.Struct, frozen=True, gc=False):
    """``<symbol>@bookTicker`` payload; spot sends no event time (``E`` is kept where a frame
    has one).

    ``T`` (transaction time) is read only to tell a USD-M futures ticker, which parse.py refuses.
    """

    u: WireInt
    s: str
    b: str
    B: str
    a: str
    A: str
    E: WireInt | None = None
    T: Any = None


class DepthUpdateEvent(msgspec.Struct, frozen=True, gc=False):
    """``<symbol>@depth`` / ``@depth@100ms`` diff-depth payload.

    ``pu`` (the previous final update id) is read only to tell a USD-M futures diff, whose
    chain rule differs from spot's, and which parse.py refuses.
    """

    e: Literal["depthUpdate"]
    E: WireInt
    s: str
    U: WireInt
    u: WireInt
    b: PriceLevels
    a: PriceLevels
    pu: Any = None


class KlineBody(msgspec.Struct, frozen=True, gc=False):
    """The nested ``k`` object of a kline event."""

    t: WireInt
    T: WireInt
    s: str
    i: str
    f: int  # -1 when the interval has no trades
    L: int
    o: DecimalText
    c: DecimalText
    h: DecimalText
    l: DecimalText  # noqa: E741 - Binance's name for the low price
    v: DecimalText
    n: WireInt
    x: bool
    q: DecimalText
    V: DecimalText
    Q: DecimalText


class KlineEvent(msgspec.Struct, frozen=True, gc=False):
    """``<symbol>@kline_<interval>`` payload."""

    e: Literal["kline"]
    E: WireInt
    s: str
    k: KlineBody


class RestAggTrade(msgspec.Struct, frozen=True, gc=False):
    """One element of ``GET /api/v3/aggTrades``."""

    a: WireInt
    p: DecimalText
    q: DecimalText
    f: WireInt
    l: WireInt  # noqa: E741 - Binance's name for the last trade id
    T: WireInt
    m: bool
    M: bool = True


class RestTrade(msgspec.Struct, frozen=True, gc=False):
    """One element of ``GET /api/v3/trades`` and ``/api/v3/historicalTrades``."""

    id: WireInt
    price: DecimalText
    qty: DecimalText
    quoteQty: DecimalText
    time: WireInt
    isBuyerMaker: bool
    isBestMatch: bool = True


class RestKlineRow(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One row of ``GET /api/v3/klines`` (a JSON array; trailing extra columns are ignored)."""

    open_time: WireInt
    open: DecimalText
    high: DecimalText
    low: DecimalText
    close: DecimalText
    volume: DecimalText
    close_time: WireInt
    quote_volume: DecimalText
    trade_count: WireInt
    taker_buy_base_volume: DecimalText
    taker_buy_quote_volume: DecimalText


class RestDepth(msgspec.Struct, frozen=True, gc=False):
    """``GET /api/v3/depth`` order book snapshot."""

    lastUpdateId: WireInt
    bids: CheckedPriceLevels
    asks: CheckedPriceLevels


class RestSymbolFilter(msgspec.Struct, frozen=True, gc=False):
    """A symbol filter; only PRICE_FILTER's tickSize and LOT_SIZE's stepSize are used."""

    filterType: str
    tickSize: DecimalText | None = None
    stepSize: DecimalText | None = None


class RestSymbol(msgspec.Struct, frozen=True, gc=False):
    """One entry of ``exchangeInfo.symbols`` (the parts we use)."""

    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    filters: tuple[RestSymbolFilter, ...] = ()


class RestExchangeInfo(msgspec.Struct, frozen=True, gc=False):
    """``GET /api/v3/exchangeInfo`` (the parts we use)."""

    serverTime: WireInt
    symbols: tuple[RestSymbol, ...]
