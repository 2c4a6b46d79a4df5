"""Kraken spot WebSocket v2 frames to records: one parser per connection, since it keeps books.

Frames, as Kraken sends them on ``wss://ws.kraken.com/v2``::

    {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",
     "price":62016.2,"qty":0.00500000,"ord_type":"limit","trade_id":74390193,
     "timestamp":"2024-08-09T00:00:01.123456Z"}]}
    {"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":62016.1,
     "bid_qty":1.50000000,"ask":62016.2,"ask_qty":0.25000000,"last":62016.2,...}]}
    {"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":62016.1,
     "qty":0.00000000}],"asks":[],"checksum":2806823658,"timestamp":"2024-08-09T..."}]}
    {"channel":"heartbeat"}  {"channel":"status",...}  {"method":"subscribe","success":true,...}

- ``trade`` → :class:`Trade`; ``trade_id`` is Kraken's, one more per trade of the pair; ``side``
  is the taker's, so a taker ``sell`` means the buyer was the maker (``is_buyer_maker``).
- ``ticker`` → :class:`BookTicker`. Kraken gives no update id: ``update_id`` is the ticker's
  time in ns (its ``timestamp``, else the receive time), raised to one more than the symbol's
  previous id when it would not be larger, so newer is always larger, across reconnects too.
- ``book`` snapshot → :class:`DepthSnapshot`, update → :class:`DepthUpdate` carrying the frame's
  ``checksum``; the parser keeps each symbol's book (:mod:`streaming.venues.kraken.book`) and
  compares Kraken's checksum after the snapshot and every update: a mismatch raises
  ``Resync("checksum_mismatch", ...)``. The depth the book is cut to is the subscription's,
  as Kraken's subscribe answer tells it (the parser's default until then).
- heartbeats, status and method answers → None; a refused request raises a parse error
  (``unsupported stream``) so the frame is kept.

Prices and quantities are the digits Kraken wrote (see :mod:`streaming.venues.kraken.wire`);
times are RFC3339 converted to int ns exactly. A frame that cannot be read raises
:class:`KrakenParseError` naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import msgspec

from streaming.records import SPOT, BookTicker, DepthSnapshot, DepthUpdate, PriceLevel, Trade
from streaming.venues.base import ParsedFrame
from streaming.venues.errors import INVALID_FIELD, MISSING_FIELD, UNSUPPORTED_STREAM
from streaming.venues.kraken.book import CHECKSUM_LEVELS, KrakenBooks
from streaming.venues.kraken.wire import (
    DECIMAL_RUN,
    KrakenParseError,
    V2BookMessage,
    V2ChannelMessage,
    V2Envelope,
    V2Level,
    V2MethodResponse,
    V2TickerMessage,
    V2TradeMessage,
    from_msgspec,
    number_text,
    rfc3339_ns,
)

VENUE_NAME = "KRAKEN"
DEFAULT_BOOK_DEPTH = 10
CHANNELS = ("trade", "ticker", "book", "heartbeat", "status")

# ValidationError is a DecodeError; msgspec raises RecursionError for absurdly nested input.
DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
_MESSAGE_DECODER = msgspec.json.Decoder(V2ChannelMessage, float_hook=str)
_ENVELOPE_DECODER = msgspec.json.Decoder(V2Envelope)
_RESPONSE_DECODER = msgspec.json.Decoder(V2MethodResponse)
_flatten = chain.from_iterable


def _invalid(reason: str, raw: bytes, field: str) -> KrakenParseError:
    return KrakenParseError(INVALID_FIELD, reason, raw, field)


def _number(value: Any, raw: bytes, field: str) -> str:
    """A number field's text, or the error naming it (the slow path)."""
    text = number_text(value)
    if text is None:
        raise _invalid(f"expected a non-negative decimal number, got {value!r}", raw, field)
    return text


def _numbers(values: Sequence[Any], names: Sequence[str], raw: bytes, prefix: str) -> list[str]:
    """The texts of a message's number fields; all checked with one regex call when they are
    plain decimals, one by one (naming the bad one) otherwise."""
    if all(type(value) is str for value in values):
        text = " ".join(values) + " "
        if DECIMAL_RUN(text) is not None and text.count(" ") == len(values):
            return list(values)
    return [_number(v, raw, f"{prefix}.{n}") for v, n in zip(values, names, strict=True)]


def _levels(levels: tuple[V2Level, ...], raw: bytes, path: str) -> tuple[PriceLevel, ...]:
    """A side's levels as (price, quantity) texts; ``path`` names the side in errors."""
    if not levels:
        return ()
    pairs = tuple([(level.price, level.qty) for level in levels])
    try:
        text = " ".join(_flatten(pairs)) + " "
    except TypeError:  # an integer literal, or not a number at all
        text = ""
    if DECIMAL_RUN(text) is not None and text.count(" ") == 2 * len(pairs):
        return pairs
    return tuple(
        (
            _number(level.price, raw, f"{path}[{i}].price"),
            _number(level.qty, raw, f"{path}[{i}].qty"),
        )
        for i, level in enumerate(levels)
    )


def _time_ns(text: str, raw: bytes, field: str) -> int:
    ns = rfc3339_ns(text)
    if ns is None:
        raise _invalid(f"expected an RFC3339 time, got {text!r}", raw, field)
    return ns


def next_ticker_id(last_ids: dict[str, int], symbol: str, stamp_ns: int) -> int:
    """The symbol's next ticker update id: ``stamp_ns``, or one more than the last id when that
    is not smaller (so ids only grow, and stay near the clock across reconnects)."""
    last = last_ids.get(symbol, -1)
    update_id = stamp_ns if stamp_ns > last else last + 1
    last_ids[symbol] = update_id
    return update_id


class KrakenFrameParser:
    """WebSocket v2 frames of one connection to records (see the module's docstring)."""

    __slots__ = ("_books", "_default_depth", "_depths", "_ticker_ids")

    def __init__(self, book_depth: int = DEFAULT_BOOK_DEPTH) -> None:
        if book_depth < CHECKSUM_LEVELS:
            raise ValueError(f"book depth must be at least {CHECKSUM_LEVELS}, got {book_depth}")
        self._books = KrakenBooks()
        self._default_depth = book_depth
        self._depths: dict[str, int] = {}  # from the book subscribe answers
        self._ticker_ids: dict[str, int] = {}

    @property
    def books(self) -> KrakenBooks:
        """The connection's books, by symbol."""
        return self._books

    def parse(self, raw: bytes, receive_ns: int) -> ParsedFrame:
        try:
            message = _MESSAGE_DECODER.decode(raw)
        except DECODE_ERRORS as exc:
            return self._other(raw, exc)
        kind = type(message)
        if kind is V2BookMessage:
            return self._book(message, raw, receive_ns)
        if kind is V2TickerMessage:
            return self._tickers(message, raw, receive_ns)
        if kind is V2TradeMessage:
            return _trades(message, raw, receive_ns)
        return None  # heartbeat, status

    def _other(self, raw: bytes, exc: Exception) -> ParsedFrame:
        """A frame that is no channel message of the expected shape: a method's answer, or an
        error to name."""
        try:
            envelope = _ENVELOPE_DECODER.decode(raw)
        except DECODE_ERRORS as error:
            raise from_msgspec(error, raw) from None
        if envelope.channel is not None:
            if envelope.channel in CHANNELS:  # a channel's message that does not fit its type
                raise from_msgspec(exc, raw) from None
            raise KrakenParseError(
                UNSUPPORTED_STREAM, f"channel {envelope.channel!r}", raw, "channel"
            )
        if envelope.method is None:
            raise KrakenParseError(MISSING_FIELD, "neither channel nor method", raw, "channel")
        try:
            response = _RESPONSE_DECODER.decode(raw)
        except DECODE_ERRORS as error:
            raise from_msgspec(error, raw) from None
        if response.success is False:
            reason = f"{response.method} refused: {response.error or 'no reason given'}"
            raise KrakenParseError(UNSUPPORTED_STREAM, reason, raw, "error")
        result = response.result
        if (
            response.method == "subscribe"
            and result is not None
            and result.channel == "book"
            and result.symbol is not None
            and result.depth is not None
            and result.depth >= CHECKSUM_LEVELS  # Kraken's least depth
        ):
            self._depths[result.symbol] = result.depth
        return None

    def _book(self, message: V2BookMessage, raw: bytes, receive_ns: int) -> ParsedFrame:
        records: list[DepthSnapshot | DepthUpdate] = []
        snapshot = message.type == "snapshot"
        for index, data in enumerate(message.data):
            prefix = f"data[{index}]"
            bids = _levels(data.bids, raw, f"{prefix}.bids")
            asks = _levels(data.asks, raw, f"{prefix}.asks")
            symbol, checksum = data.symbol, data.checksum
            if snapshot:
                depth = self._depths.get(symbol, self._default_depth)
                book = self._books.snapshot(symbol, depth, bids, asks, checksum)
                records.append(
                    DepthSnapshot(
                        symbol, book.update_id, bids, asks, receive_ns, VENUE_NAME, SPOT, checksum
                    )
                )
                continue
            if data.timestamp is None:
                raise KrakenParseError(
                    MISSING_FIELD, "a book update without its time", raw, f"{prefix}.timestamp"
                )
            event_ns = _time_ns(data.timestamp, raw, f"{prefix}.timestamp")
            update_id = self._books.update(symbol, bids, asks, checksum).update_id
            records.append(
                DepthUpdate(
                    symbol, update_id, update_id, bids, asks, event_ns, receive_ns, VENUE_NAME,
                    SPOT, checksum,
                )
            )  # fmt: skip
        return _one_or_many(records)

    def _tickers(self, message: V2TickerMessage, raw: bytes, receive_ns: int) -> ParsedFrame:
        records: list[BookTicker] = []
        for index, data in enumerate(message.data):
            prefix = f"data[{index}]"
            bid, bid_qty, ask, ask_qty = _numbers(
                (data.bid, data.bid_qty, data.ask, data.ask_qty), _TICKER_FIELDS, raw, prefix
            )
            event_ns = (
                None if data.timestamp is None
                else _time_ns(data.timestamp, raw, f"{prefix}.timestamp")
            )  # fmt: skip
            stamp = receive_ns if event_ns is None else event_ns
            update_id = next_ticker_id(self._ticker_ids, data.symbol, stamp)
            records.append(
                BookTicker(
                    data.symbol, update_id, bid, bid_qty, ask, ask_qty, receive_ns, event_ns,
                    VENUE_NAME, SPOT,
                )
            )  # fmt: skip
        return _one_or_many(records)


_TICKER_FIELDS = ("bid", "bid_qty", "ask", "ask_qty")
_TRADE_FIELDS = ("price", "qty")


def _trades(message: V2TradeMessage, raw: bytes, receive_ns: int) -> ParsedFrame:
    records: list[Trade] = []
    for index, data in enumerate(message.data):
        prefix = f"data[{index}]"
        price, quantity = _numbers((data.price, data.qty), _TRADE_FIELDS, raw, prefix)
        trade_ns = _time_ns(data.timestamp, raw, f"{prefix}.timestamp")
        records.append(
            Trade(
                data.symbol, data.trade_id, price, quantity, data.side == "sell", trade_ns,
                trade_ns, receive_ns, VENUE_NAME, SPOT,
            )
        )  # fmt: skip
    return _one_or_many(records)


def _one_or_many(records: Sequence[Any]) -> ParsedFrame:
    if len(records) == 1:
        return records[0]
    return list(records) if records else None
