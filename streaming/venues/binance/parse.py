"""Pure parse functions: Binance bytes in, domain records out (one normalizer for the venue).

Combined-stream frame, as Binance sends it on ``/stream?streams=...``::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",
     "t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}
    {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",
     "b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}
    {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,
     "s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],
     "a":[["61838.04000000","0.32332000"]]}}

Raw streams (``/ws/<stream>``) send only the ``data`` object; REST responses are parsed by the
``parse_rest_*`` functions. Every failure is a BinanceParseError naming the field at fault.
USD-M futures frames are refused the same way rather than read as spot records: a trade with an
execution type ``X`` and no ``M``, a book ticker with a transaction time ``T``, a depth update
with ``pu``, and any ``markPrice`` stream (:mod:`streaming.venues.binance_futures` reads them).

A combined-stream frame is checked in two steps, the envelope and then its data by the stream's
type; once a stream has been seen, its frames take one decode instead (see
:mod:`streaming.venues.binance.frames`), and fall back to the two steps whenever in doubt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

import msgspec

from streaming.venues.binance.errors import (
    INVALID_FIELD,
    UNSUPPORTED_STREAM,
    BinanceParseError,
    as_bytes,
    from_msgspec,
    join_path,
)
from streaming.venues.binance.frames import MS_TO_NS, FastFrames
from streaming.venues.binance.records import (
    AggTrade,
    BinanceRecord,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    ExchangeInfo,
    Kline,
    SymbolInfo,
    Trade,
)
from streaming.venues.binance.wire import (
    DECIMAL_PATTERN,
    AggTradeEvent,
    BookTickerEvent,
    DepthUpdateEvent,
    KlineEvent,
    PriceLevels,
    RestAggTrade,
    RestDepth,
    RestExchangeInfo,
    RestKlineRow,
    RestTrade,
    StreamEnvelope,
    TradeEvent,
)

# ValidationError is a DecodeError; msgspec raises RecursionError for absurdly nested input.
DECODE_ERRORS = (msgspec.DecodeError, RecursionError)

_ENVELOPE_DECODER = msgspec.json.Decoder(StreamEnvelope)
_TRADE_DECODER = msgspec.json.Decoder(TradeEvent)
_AGG_TRADE_DECODER = msgspec.json.Decoder(AggTradeEvent)
_BOOK_TICKER_DECODER = msgspec.json.Decoder(BookTickerEvent)
_DEPTH_UPDATE_DECODER = msgspec.json.Decoder(DepthUpdateEvent)
_KLINE_DECODER = msgspec.json.Decoder(KlineEvent)
_REST_AGG_TRADES_DECODER = msgspec.json.Decoder(list[RestAggTrade])
_REST_TRADES_DECODER = msgspec.json.Decoder(list[RestTrade])
_REST_KLINES_DECODER = msgspec.json.Decoder(list[RestKlineRow])
_REST_DEPTH_DECODER = msgspec.json.Decoder(RestDepth)
_REST_EXCHANGE_INFO_DECODER = msgspec.json.Decoder(RestExchangeInfo)


def _decode(decoder: msgspec.json.Decoder[Any], payload: Any, frame: bytes, prefix: str) -> Any:
    """Decode with ``decoder``, any failure as a BinanceParseError about ``frame``."""
    try:
        return decoder.decode(payload)
    except DECODE_ERRORS as exc:
        raise from_msgspec(exc, frame, prefix) from None


# Each decimal followed by one space; a space inside a value changes the count of separators.
_DECIMAL_RUN = re.compile(f"(?:{DECIMAL_PATTERN} )*+").fullmatch
_flatten = chain.from_iterable


def _bad_decimal(fields: Iterable[tuple[str, str]], frame: bytes, prefix: str) -> BinanceParseError:
    """Name the first field whose value is not a plain decimal (slow path, errors only)."""
    for name, value in fields:
        if _DECIMAL_RUN(value + " ") is None or " " in value:
            reason = f"expected a decimal string, got {value!r}"
            return BinanceParseError(
                INVALID_FIELD, reason, as_bytes(frame), join_path(prefix, name)
            )
    return BinanceParseError(INVALID_FIELD, "expected decimals", as_bytes(frame), prefix or None)


def _level_fields(side: str, levels: PriceLevels) -> Iterator[tuple[str, str]]:
    """``(path, value)`` of every price and quantity of one side, for naming the bad one."""
    for index, level in enumerate(levels):
        yield f"{side}[{index}][0]", level[0]
        yield f"{side}[{index}][1]", level[1]


def _futures_frame(field: str, reason: str, frame: bytes, prefix: str) -> BinanceParseError:
    """A USD-M futures frame met by the spot parser (streaming.venues.binance_futures reads it)."""
    return BinanceParseError(
        INVALID_FIELD, f"a USD-M futures {reason}, not a spot one", as_bytes(frame),
        join_path(prefix, field),
    )  # fmt: skip


# _trade and _agg_trade repeat their three-line decimal check on purpose: a shared helper costs
# about 3% of the aggTrade parse rate (bench parse).
def _trade(event: TradeEvent, receive_ns: int, frame: bytes, prefix: str) -> Trade:
    if event.X is not None and event.M is None:  # spot sends M, futures its execution type X
        raise _futures_frame("X", "trade (execution type X, no M)", frame, prefix)
    text = f"{event.p} {event.q} "
    if _DECIMAL_RUN(text) is None or text.count(" ") != 2:
        raise _bad_decimal((("p", event.p), ("q", event.q)), frame, prefix)
    return Trade(
        event.s, event.t, event.p, event.q, event.m, event.T * MS_TO_NS, event.E * MS_TO_NS,
        receive_ns,
    )  # fmt: skip


def _agg_trade(event: AggTradeEvent, receive_ns: int, frame: bytes, prefix: str) -> AggTrade:
    text = f"{event.p} {event.q} "
    if _DECIMAL_RUN(text) is None or text.count(" ") != 2:
        raise _bad_decimal((("p", event.p), ("q", event.q)), frame, prefix)
    return AggTrade(
        event.s, event.a, event.p, event.q, event.f, event.l, event.m, event.T * MS_TO_NS,
        event.E * MS_TO_NS, receive_ns,
    )  # fmt: skip


def _book_ticker(event: BookTickerEvent, receive_ns: int, frame: bytes, prefix: str) -> BookTicker:
    if event.T is not None:  # spot sends no transaction time
        raise _futures_frame("T", "book ticker (transaction time T)", frame, prefix)
    text = f"{event.b} {event.B} {event.a} {event.A} "
    if _DECIMAL_RUN(text) is None or text.count(" ") != 4:
        fields = (("b", event.b), ("B", event.B), ("a", event.a), ("A", event.A))
        raise _bad_decimal(fields, frame, prefix)
    event_ns = None if event.E is None else event.E * MS_TO_NS
    return BookTicker(event.s, event.u, event.b, event.B, event.a, event.A, receive_ns, event_ns)


def _depth_update(
    event: DepthUpdateEvent, receive_ns: int, frame: bytes, prefix: str
) -> DepthUpdate:
    if event.pu is not None:  # futures diffs chain by pu, spot's by U == previous u + 1
        raise _futures_frame("pu", "depth update (previous final update id pu)", frame, prefix)
    text = " ".join(chain(_flatten(event.b), _flatten(event.a), ("",)))
    if _DECIMAL_RUN(text) is None or text.count(" ") != 2 * (len(event.b) + len(event.a)):
        fields = chain(_level_fields("b", event.b), _level_fields("a", event.a))
        raise _bad_decimal(fields, frame, prefix)
    return DepthUpdate(
        event.s, event.U, event.u, event.b, event.a, event.E * MS_TO_NS, receive_ns
    )  # fmt: skip


def _kline(event: KlineEvent, receive_ns: int, frame: bytes, prefix: str) -> Kline:
    k = event.k  # its decimals were checked by the wire type (klines are rare)
    return Kline(
        symbol=k.s,
        interval=k.i,
        open_ns=k.t * MS_TO_NS,
        close_ns=k.T * MS_TO_NS,
        open=k.o,
        high=k.h,
        low=k.l,
        close=k.c,
        volume=k.v,
        quote_volume=k.q,
        trade_count=k.n,
        taker_buy_base_volume=k.V,
        taker_buy_quote_volume=k.Q,
        is_closed=k.x,
        event_ns=event.E * MS_TO_NS,
        receive_ns=receive_ns,
        first_trade_id=k.f if k.f >= 0 else None,
        last_trade_id=k.L if k.L >= 0 else None,
    )


_Route = tuple[msgspec.json.Decoder[Any], Callable[[Any, int, bytes, str], BinanceRecord]]
_ROUTES_BY_KIND: dict[str, _Route] = {
    "trade": (_TRADE_DECODER, _trade),
    "aggTrade": (_AGG_TRADE_DECODER, _agg_trade),
    "bookTicker": (_BOOK_TICKER_DECODER, _book_ticker),
    "depth": (_DEPTH_UPDATE_DECODER, _depth_update),
    "depth@100ms": (_DEPTH_UPDATE_DECODER, _depth_update),
    "depth@1000ms": (_DEPTH_UPDATE_DECODER, _depth_update),
}
_KLINE_ROUTE: _Route = (_KLINE_DECODER, _kline)
# Stream names repeat on every frame, so each is resolved to its route once. The cache is capped:
# names come off the wire, and a feed of ever-new names must not grow it without bound.
_ROUTES_BY_STREAM: dict[str, _Route] = {}
_MAX_CACHED_STREAMS = 4096


def _route(stream: str, frame: bytes, field: str | None) -> _Route:
    route = _ROUTES_BY_STREAM.get(stream)
    if route is not None:
        return route
    symbol, _, kind = stream.partition("@")
    route = _KLINE_ROUTE if kind.startswith("kline_") else _ROUTES_BY_KIND.get(kind)
    if route is None or not symbol:
        raise BinanceParseError(UNSUPPORTED_STREAM, f"stream {stream!r}", as_bytes(frame), field)
    if len(_ROUTES_BY_STREAM) < _MAX_CACHED_STREAMS:
        _ROUTES_BY_STREAM[stream] = route
    return route


def parse_stream_frame(raw: bytes, receive_ns: int) -> BinanceRecord:
    """Parse one combined-stream frame (``{"stream": ..., "data": ...}``) into a record."""
    if type(raw) is bytes:  # text frames go the checked way
        try:
            frame = FAST_FRAMES.decoder.decode(raw)
        except DECODE_ERRORS:
            pass  # the checked way names the fault
        else:
            return frame.build(receive_ns, raw)
    return _parse_checked(raw, receive_ns)


def _parse_checked(raw: bytes, receive_ns: int) -> BinanceRecord:
    """The envelope first, then its data by the stream's type: every failure names its field."""
    try:
        envelope: StreamEnvelope = _ENVELOPE_DECODER.decode(raw)
    except DECODE_ERRORS as exc:
        raise from_msgspec(exc, raw, "") from None
    route = _ROUTES_BY_STREAM.get(envelope.stream) or _route(envelope.stream, raw, "stream")
    try:
        event = route[0].decode(envelope.data)
    except DECODE_ERRORS as exc:
        raise from_msgspec(exc, raw, "data") from None
    record = route[1](event, receive_ns, raw, "data")
    FAST_FRAMES.learn(envelope.stream, type(event), route[1])
    return record


# The streams parse_stream_frame has parsed take the fast way (streaming.venues.binance.frames).
# For a caller that takes that way itself, saving a call per frame: for a bytes frame,
# ``FAST_FRAMES.decoder.decode(raw).build(receive_ns, raw)``, and parse_stream_frame when that
# raises one of DECODE_ERRORS, give what parse_stream_frame gives.
FAST_FRAMES = FastFrames(_parse_checked)


def parse_stream_payload(stream: str, raw: bytes, receive_ns: int) -> BinanceRecord:
    """Parse the payload of a raw ``/ws/<stream>`` connection whose stream name is known."""
    decoder, build = _route(stream, raw, None)
    return build(_decode(decoder, raw, raw, ""), receive_ns, raw, "")


def parse_trade(raw: bytes, receive_ns: int) -> Trade:
    """Parse a raw ``<symbol>@trade`` payload."""
    return _trade(_decode(_TRADE_DECODER, raw, raw, ""), receive_ns, raw, "")


def parse_agg_trade(raw: bytes, receive_ns: int) -> AggTrade:
    """Parse a raw ``<symbol>@aggTrade`` payload."""
    return _agg_trade(_decode(_AGG_TRADE_DECODER, raw, raw, ""), receive_ns, raw, "")


def parse_book_ticker(raw: bytes, receive_ns: int) -> BookTicker:
    """Parse a raw ``<symbol>@bookTicker`` payload."""
    return _book_ticker(_decode(_BOOK_TICKER_DECODER, raw, raw, ""), receive_ns, raw, "")


def parse_depth_update(raw: bytes, receive_ns: int) -> DepthUpdate:
    """Parse a raw ``<symbol>@depth[@100ms]`` diff-depth payload."""
    return _depth_update(_decode(_DEPTH_UPDATE_DECODER, raw, raw, ""), receive_ns, raw, "")


def parse_kline(raw: bytes, receive_ns: int) -> Kline:
    """Parse a raw ``<symbol>@kline_<interval>`` payload."""
    return _kline(_decode(_KLINE_DECODER, raw, raw, ""), receive_ns, raw, "")


def parse_rest_agg_trades(raw: bytes, symbol: str, receive_ns: int) -> list[AggTrade]:
    """Parse a ``GET /api/v3/aggTrades`` response for ``symbol``."""
    rows: list[RestAggTrade] = _decode(_REST_AGG_TRADES_DECODER, raw, raw, "")
    return [
        AggTrade(symbol, r.a, r.p, r.q, r.f, r.l, r.m, r.T * MS_TO_NS, None, receive_ns)
        for r in rows
    ]


def parse_rest_trades(raw: bytes, symbol: str, receive_ns: int) -> list[Trade]:
    """Parse a ``GET /api/v3/trades`` or ``/api/v3/historicalTrades`` response for ``symbol``."""
    rows: list[RestTrade] = _decode(_REST_TRADES_DECODER, raw, raw, "")
    return [
        Trade(symbol, r.id, r.price, r.qty, r.isBuyerMaker, r.time * MS_TO_NS, None, receive_ns)
        for r in rows
    ]


def parse_rest_klines(raw: bytes, symbol: str, interval: str, receive_ns: int) -> list[Kline]:
    """Parse a ``GET /api/v3/klines`` response for ``symbol`` and ``interval``.

    REST rows carry no closed flag: a row counts as closed when its close time lies before
    ``receive_ns`` (pass Binance's server time instead when the local clock is not trusted).
    """
    rows: list[RestKlineRow] = _decode(_REST_KLINES_DECODER, raw, raw, "")
    return [
        Kline(
            symbol=symbol,
            interval=interval,
            open_ns=r.open_time * MS_TO_NS,
            close_ns=r.close_time * MS_TO_NS,
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
            quote_volume=r.quote_volume,
            trade_count=r.trade_count,
            taker_buy_base_volume=r.taker_buy_base_volume,
            taker_buy_quote_volume=r.taker_buy_quote_volume,
            is_closed=r.close_time * MS_TO_NS < receive_ns,
            event_ns=None,
            receive_ns=receive_ns,
        )
        for r in rows
    ]


def parse_rest_depth(raw: bytes, symbol: str, receive_ns: int) -> DepthSnapshot:
    """Parse a ``GET /api/v3/depth`` order book snapshot for ``symbol``."""
    depth: RestDepth = _decode(_REST_DEPTH_DECODER, raw, raw, "")
    return DepthSnapshot(symbol, depth.lastUpdateId, depth.bids, depth.asks, receive_ns)


def parse_exchange_info(raw: bytes, receive_ns: int) -> ExchangeInfo:
    """Parse ``GET /api/v3/exchangeInfo``: server time and each symbol's tick and step size."""
    info: RestExchangeInfo = _decode(_REST_EXCHANGE_INFO_DECODER, raw, raw, "")
    symbols = []
    for entry in info.symbols:
        by_type = {f.filterType: f for f in entry.filters}
        price_filter = by_type.get("PRICE_FILTER")
        lot_size = by_type.get("LOT_SIZE")
        symbols.append(
            SymbolInfo(
                symbol=entry.symbol,
                status=entry.status,
                base_asset=entry.baseAsset,
                quote_asset=entry.quoteAsset,
                tick_size=price_filter.tickSize if price_filter else None,
                step_size=lot_size.stepSize if lot_size else None,
            )
        )
    return ExchangeInfo(info.serverTime * MS_TO_NS, tuple(symbols), receive_ns)
