"""Binance USD-M futures frames to neutral records, every one ``BINANCE_FUTURES`` / ``perpetual``.

Combined-stream frames, in the shapes Binance documents for USD-M futures::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1679851564490,"T":1679851564486,
     "s":"BTCUSDT","t":3493102749,"p":"27785.00","q":"0.014","X":"MARKET","m":true}}
    {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,"E":1568014460893,
     "T":1568014460891,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000",
     "A":"40.66000000"}}
    {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,
     "s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265",
     "r":"0.00038167","T":1562306400000}}
    {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":123456789,"T":123456788,
     "s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}

- ``trade``: only ``X == "MARKET"`` trades, the order book's, become records. Liquidation fills
  (``INSURANCE_FUND``, ``ADL``, or any other execution type) give None: they do not trade at the
  book's price (insurance-fund fills are the bankruptcy price, far off the market at times), and
  Binance's aggregate trades and ``/fapi/v1/historicalTrades`` leave them out as well. The parser
  counts them in ``non_market_trades``. Since they take trade ids of their own, the ids of the
  market trades are unique and increasing but not contiguous.
- ``bookTicker`` → BookTicker (``event_ns`` from ``E``); ``markPrice`` → FundingRate.
- ``depthUpdate`` → DepthUpdate. Futures diffs chain by ``pu``: each diff's ``pu`` is the ``u`` of
  the diff before it on the same stream (spot's rule, ``U == previous u + 1``, does not hold).
  A break raises :class:`~streaming.venues.base.Resync` (``sequence_gap``) and the chain starts
  over with the next diff. Bridging a REST snapshot (``U <= lastUpdateId <= u``) is the book
  keeper's business.

Every frame takes one decode (the data's type is told by ``e``); a frame that fails it is decoded
again the checked way, envelope and then data, so that the error names the field at fault. Prices,
quantities and rates must be plain decimals (a funding rate may be negative).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, cast

import msgspec

from streaming.records import (
    PERPETUAL,
    BookTicker,
    DepthUpdate,
    FundingRate,
    MarketType,
    Trade,
)
from streaming.venues.base import ParsedFrame, Resync
from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.wire import DECIMAL_PATTERN, PriceLevels, RestTrade
from streaming.venues.binance_futures.wire import (
    BookTickerEvent,
    DepthUpdateEvent,
    MarkPriceEvent,
    StreamEnvelope,
    StreamFrame,
    TradeEvent,
)
from streaming.venues.errors import (
    INVALID_FIELD,
    UNSUPPORTED_STREAM,
    as_bytes,
    from_msgspec,
)

VENUE_NAME = "BINANCE_FUTURES"
MARKET: MarketType = PERPETUAL
MARKET_TRADE = "MARKET"
"""The execution type ``X`` of a trade of the order book."""
MS_TO_NS = 1_000_000

EVENT_OF_CHANNEL: dict[str, type] = {
    "trade": TradeEvent,
    "bookTicker": BookTickerEvent,
    "markPrice": MarkPriceEvent,
    "markPrice@1s": MarkPriceEvent,
    "depth": DepthUpdateEvent,
    "depth@0ms": DepthUpdateEvent,
    "depth@100ms": DepthUpdateEvent,
    "depth@500ms": DepthUpdateEvent,
}
"""The channels read here (``btcusdt@<channel>``) and the event each one sends."""

# ValidationError is a DecodeError; msgspec raises RecursionError for absurdly nested input.
DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
_FRAME_DECODER = msgspec.json.Decoder(StreamFrame)
_ENVELOPE_DECODER = msgspec.json.Decoder(StreamEnvelope)
_EVENT_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {
    event: msgspec.json.Decoder(event) for event in set(EVENT_OF_CHANNEL.values())
}
_REST_TRADES_DECODER = msgspec.json.Decoder(list[RestTrade])

# Each decimal followed by one space; a space inside a value changes the count of separators.
_DECIMAL_RUN = re.compile(f"(?:{DECIMAL_PATTERN} )*+").fullmatch
_SIGNED_DECIMAL = re.compile(f"-?{DECIMAL_PATTERN}").fullmatch
_flatten = chain.from_iterable


class BinanceFuturesParseError(BinanceParseError):
    """A Binance USD-M futures frame that cannot be turned into a record (see VenueParseError)."""


def _error(kind: str, reason: str, frame: bytes | str, field: str | None) -> BinanceParseError:
    return BinanceFuturesParseError(kind, reason, as_bytes(frame), field)


def _from_msgspec(exc: Exception, frame: bytes | str, prefix: str) -> BinanceParseError:
    return cast(BinanceParseError, from_msgspec(exc, frame, prefix, BinanceFuturesParseError))


def _bad_decimal(fields: Iterable[tuple[str, str]], frame: bytes | str) -> BinanceParseError:
    """Name the first field whose value is not a plain decimal (slow path, errors only)."""
    for name, value in fields:
        if _DECIMAL_RUN(value + " ") is None or " " in value:
            return _error(
                INVALID_FIELD, f"expected a decimal string, got {value!r}", frame, f"data.{name}"
            )
    return _error(INVALID_FIELD, "expected decimals", frame, "data")


def _level_fields(side: str, levels: PriceLevels) -> Iterator[tuple[str, str]]:
    """``(path, value)`` of every price and quantity of one side, for naming the bad one."""
    for index, level in enumerate(levels):
        yield f"{side}[{index}][0]", level[0]
        yield f"{side}[{index}][1]", level[1]


def _trade(event: TradeEvent, receive_ns: int, frame: bytes) -> Trade:
    text = f"{event.p} {event.q} "
    if _DECIMAL_RUN(text) is None or text.count(" ") != 2:
        raise _bad_decimal((("p", event.p), ("q", event.q)), frame)
    return Trade(
        event.s, event.t, event.p, event.q, event.m, event.T * MS_TO_NS, event.E * MS_TO_NS,
        receive_ns, VENUE_NAME, MARKET,
    )  # fmt: skip


def _book_ticker(event: BookTickerEvent, receive_ns: int, frame: bytes) -> BookTicker:
    text = f"{event.b} {event.B} {event.a} {event.A} "
    if _DECIMAL_RUN(text) is None or text.count(" ") != 4:
        fields = (("b", event.b), ("B", event.B), ("a", event.a), ("A", event.A))
        raise _bad_decimal(fields, frame)
    return BookTicker(
        event.s, event.u, event.b, event.B, event.a, event.A, receive_ns, event.E * MS_TO_NS,
        VENUE_NAME, MARKET,
    )  # fmt: skip


def _mark_price(event: MarkPriceEvent, receive_ns: int, frame: bytes) -> FundingRate:
    index = event.i
    text = f"{event.p} " if index is None else f"{event.p} {index} "
    if _DECIMAL_RUN(text) is None or text.count(" ") != (1 if index is None else 2):
        raise _bad_decimal((("p", event.p), ("i", index or "")), frame)
    if _SIGNED_DECIMAL(event.r) is None:  # "" where the contract has no funding (not perpetual)
        reason = f"expected a signed decimal funding rate, got {event.r!r}"
        raise _error(INVALID_FIELD, reason, frame, "data.r")
    next_funding_ns = event.T * MS_TO_NS if event.T > 0 else None
    return FundingRate(
        event.s, event.p, index, event.r, next_funding_ns, event.E * MS_TO_NS, receive_ns,
        VENUE_NAME, MARKET,
    )  # fmt: skip


def _depth_update(event: DepthUpdateEvent, receive_ns: int, frame: bytes) -> DepthUpdate:
    text = " ".join(chain(_flatten(event.b), _flatten(event.a), ("",)))
    if _DECIMAL_RUN(text) is None or text.count(" ") != 2 * (len(event.b) + len(event.a)):
        raise _bad_decimal(chain(_level_fields("b", event.b), _level_fields("a", event.a)), frame)
    return DepthUpdate(
        event.s, event.U, event.u, event.b, event.a, event.E * MS_TO_NS, receive_ns,
        VENUE_NAME, MARKET,
    )  # fmt: skip


def event_of_stream(stream: str) -> type | None:
    """The event type a stream (``btcusdt@depth@0ms``) sends, None for a stream not read here."""
    symbol, _, channel = stream.partition("@")
    return EVENT_OF_CHANNEL.get(channel) if symbol else None


# Stream names repeat on every frame, so each is checked once. The cache is capped: names come
# off the wire, and a feed of ever-new names must not grow it without bound.
_EVENT_OF_STREAM: dict[str, type] = {}
_MAX_CACHED_STREAMS = 4096


def _admit(stream: str, event: Any, frame: bytes) -> None:
    """Check that ``stream`` is read here and sends ``event``'s type, or raise."""
    expected = event_of_stream(stream)
    if expected is None:
        raise _error(UNSUPPORTED_STREAM, f"stream {stream!r}", frame, "stream")
    if type(event) is not expected:
        tag = type(event).__struct_config__.tag
        raise _error(INVALID_FIELD, f"a {tag!r} event on stream {stream!r}", frame, "data.e")
    if len(_EVENT_OF_STREAM) < _MAX_CACHED_STREAMS:
        _EVENT_OF_STREAM[stream] = expected


def _explain(frame: bytes, failure: Exception) -> BinanceParseError:
    """Why a frame does not decode (``failure``: the error of its one decode), naming the field:
    the envelope first, then the data as its stream's event."""
    try:
        envelope = _ENVELOPE_DECODER.decode(frame)
    except DECODE_ERRORS as exc:
        return _from_msgspec(exc, frame, "")
    expected = event_of_stream(envelope.stream)
    if expected is None:
        return _error(UNSUPPORTED_STREAM, f"stream {envelope.stream!r}", frame, "stream")
    try:
        _EVENT_DECODERS[expected].decode(envelope.data)
    except DECODE_ERRORS as exc:
        return _from_msgspec(exc, frame, "data")
    return _from_msgspec(failure, frame, "")  # its event type tag, ``e``, is at fault


class BinanceFuturesFrameParser:
    """One connection's combined-stream frames to records, in arrival order.

    Keeps each depth stream's last final update id (``pu`` continuity) and counts the trades
    left out for not being market trades (``non_market_trades``).
    """

    __slots__ = ("_last_final_ids", "non_market_trades")

    def __init__(self) -> None:
        self._last_final_ids: dict[str, int] = {}
        self.non_market_trades = 0

    def parse(self, raw: bytes, receive_ns: int) -> ParsedFrame:
        """The frame's record (None for a trade that is not a market trade); raises
        BinanceFuturesParseError for a frame it cannot read and Resync on a depth gap."""
        try:
            frame: StreamFrame = _FRAME_DECODER.decode(raw)
        except DECODE_ERRORS as exc:
            raise _explain(raw, exc) from None
        data, stream = frame.data, frame.stream
        if _EVENT_OF_STREAM.get(stream) is not type(data):
            _admit(stream, data, raw)
        if isinstance(data, BookTickerEvent):
            return _book_ticker(data, receive_ns, raw)
        if isinstance(data, DepthUpdateEvent):
            return self._depth_update(stream, data, receive_ns, raw)
        if isinstance(data, TradeEvent):
            trade = _trade(data, receive_ns, raw)
            if data.X == MARKET_TRADE:
                return trade
            self.non_market_trades += 1
            return None
        return _mark_price(data, receive_ns, raw)

    def _depth_update(
        self, stream: str, event: DepthUpdateEvent, receive_ns: int, frame: bytes
    ) -> DepthUpdate:
        record = _depth_update(event, receive_ns, frame)
        last = self._last_final_ids.get(stream)
        if last is not None and event.pu != last:
            del self._last_final_ids[stream]  # the next diff starts a new chain
            raise Resync(
                "sequence_gap",
                f"{stream}: diff {event.U}..{event.u} has pu {event.pu}, the previous u was {last}",
            )
        self._last_final_ids[stream] = event.u
        return record


def parse_rest_trades(raw: bytes, symbol: str, receive_ns: int) -> list[Trade]:
    """A ``GET /fapi/v1/historicalTrades`` (or ``/fapi/v1/trades``) response for ``symbol``."""
    try:
        rows: list[RestTrade] = _REST_TRADES_DECODER.decode(raw)
    except DECODE_ERRORS as exc:
        raise _from_msgspec(exc, raw, "") from None
    return [_rest_trade(symbol, row, receive_ns) for row in rows]


def _rest_trade(symbol: str, row: RestTrade, receive_ns: int) -> Trade:
    return Trade(
        symbol, row.id, row.price, row.qty, row.isBuyerMaker, row.time * MS_TO_NS, None,
        receive_ns, VENUE_NAME, MARKET,
    )  # fmt: skip
