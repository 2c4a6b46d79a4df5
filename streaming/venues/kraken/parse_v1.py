"""Kraken spot WebSocket v1 frames to records (``wss://ws.kraken.com``, the 2021 captures).

v1 sends arrays ``[channelID, body, channelName, pair]`` (a book update may carry two bodies,
asks then bids) and event objects::

    [1360,{"as":[["0.000022900","13355.87450757","1618678123.481570"],...],"bs":[...]},
     "book-1000","ADA/XBT"]
    [992,{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},
     "book-1000","XMR/USD"]
    [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]
    [996,{"a":["355.24000000",27,"27.19106411"],"b":["354.32000000",6,"6.87748868"],...},
     "ticker","XMR/USD"]
    {"event":"heartbeat"}  {"event":"systemStatus",...}  {"event":"subscriptionStatus",...}

Records are the same as v2's (:mod:`streaming.venues.kraken.parse`), with the pair spelled as v2
spells it (``XBT/CHF`` → ``BTC/CHF``), so both versions name an instrument alike. Where v1 says
less than v2:

- **trade ids**: v1 trades carry none. ``trade_id`` counts the pair's trades on this connection
  from 1, so it orders them but says nothing about trades missed between connections: the v1
  venue has ``contiguous_trade_ids = False``. A trade's ``event_ns`` is its own time.
- **book**: the depth is the channel's (``book-1000``); the checksum ``c`` comes with updates
  only (in the last body) and is compared after each; the snapshot has none. An update's
  ``event_ns`` is the newest of its levels' times.
- **ticker**: no time at all, so ``event_ns`` is None and ``update_id`` the receive time in ns
  (kept growing, as for v2).

Heartbeats, status and subscription answers give None; a refused subscription or an ``error``
event raises a parse error (``unsupported stream``) so the frame is kept.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, cast

import msgspec

from streaming.records import (
    SPOT,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    MarketRecord,
    PriceLevel,
    Trade,
)
from streaming.venues.base import ParsedFrame
from streaming.venues.errors import INVALID_FIELD, MISSING_FIELD, UNSUPPORTED_STREAM
from streaming.venues.kraken.book import CHECKSUM_LEVELS, KrakenBooks
from streaming.venues.kraken.parse import DECODE_ERRORS, VENUE_NAME, next_ticker_id
from streaming.venues.kraken.wire import (
    DECIMAL_RUN,
    KrakenParseError,
    V1BookBody,
    V1Event,
    V1Levels,
    V1TickerBody,
    V1TradeRow,
    from_msgspec,
    v2_symbol,
)

BOOK, TRADE, TICKER = "book", "trade", "ticker"
_MAX_CACHED_NAMES = 4096  # channel and pair names come off the wire: the caches are capped

_FRAME_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_EVENT_DECODER = msgspec.json.Decoder(V1Event)
_TEXT_DECODER = msgspec.json.Decoder(str)
_BOOK_DECODER = msgspec.json.Decoder(V1BookBody)
_TRADES_DECODER = msgspec.json.Decoder(tuple[V1TradeRow, ...])
_TICKER_DECODER = msgspec.json.Decoder(V1TickerBody)
_flatten = chain.from_iterable


def _decode(decoder: msgspec.json.Decoder[Any], part: Any, raw: bytes, prefix: str) -> Any:
    try:
        return decoder.decode(part)
    except DECODE_ERRORS as exc:
        raise from_msgspec(exc, raw, prefix) from None


def _bad_decimal(fields: list[tuple[str, str]], raw: bytes) -> KrakenParseError:
    """The error naming the first of ``(path, value)`` that is not a plain decimal."""
    for path, value in fields:
        if " " in value or DECIMAL_RUN(value + " ") is None:
            return KrakenParseError(
                INVALID_FIELD, f"expected a decimal string, got {value!r}", raw, path
            )
    return KrakenParseError(INVALID_FIELD, "expected decimal strings", raw, None)


def _decimals(values: tuple[str, ...], paths: tuple[str, ...], raw: bytes) -> None:
    """Check that every value is a plain decimal (one regex call)."""
    text = " ".join(values) + " "
    if DECIMAL_RUN(text) is None or text.count(" ") != len(values):
        raise _bad_decimal(list(zip(paths, values, strict=True)), raw)


def _seconds_ns(text: str) -> int | None:
    """A plain decimal of epoch seconds as int ns (digits finer than a ns dropped); None when
    it is no time (not a plain decimal, or past the year 5000)."""
    whole, _, fraction = text.partition(".")
    if len(whole) > 11 or DECIMAL_RUN(text + " ") is None or " " in text:
        return None
    return int(whole) * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))


def _levels(levels: V1Levels, raw: bytes, path: str) -> tuple[PriceLevel, ...]:
    """A side's levels as (price, volume) texts; ``path`` names the side in errors."""
    pairs = tuple([(level.price, level.volume) for level in levels])
    text = " ".join(_flatten(pairs)) + " "
    if pairs and (DECIMAL_RUN(text) is None or text.count(" ") != 2 * len(pairs)):
        raise _bad_level(levels, raw, path)
    return pairs


def _update_levels(
    levels: V1Levels, raw: bytes, index: int, side: str
) -> tuple[tuple[PriceLevel, ...], int]:
    """An update side's levels as (price, volume) texts, and the newest of their times in ns;
    errors name ``[index].side``."""
    if len(levels) == 1:  # the usual update: one regex call checks the level
        level = levels[0]
        price, volume, time = level.price, level.volume, level.timestamp
        text = f"{price} {volume} {time} "
        whole, _, fraction = time.partition(".")
        if DECIMAL_RUN(text) is not None and text.count(" ") == 3 and len(whole) <= 11:
            return ((price, volume),), int(whole) * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))
    else:
        pairs = tuple([(level.price, level.volume) for level in levels])
        text = " ".join(_flatten(pairs)) + " "
        if DECIMAL_RUN(text) is not None and text.count(" ") == 2 * len(pairs):
            times = [_seconds_ns(level.timestamp) for level in levels]
            if None not in times:
                return pairs, max(cast(list[int], times))
    raise _bad_level(levels, raw, f"[{index}].{side}")


def _bad_level(levels: V1Levels, raw: bytes, path: str) -> KrakenParseError:
    """The error naming the first bad price, volume or time of ``levels`` (the side ``path``)."""
    for i, level in enumerate(levels):
        for k, value in enumerate((level.price, level.volume)):
            if " " in value or DECIMAL_RUN(value + " ") is None:
                reason = f"expected a decimal string, got {value!r}"
                return KrakenParseError(INVALID_FIELD, reason, raw, f"{path}[{i}][{k}]")
        if _seconds_ns(level.timestamp) is None:
            reason = f"expected epoch seconds, got {level.timestamp!r}"
            return KrakenParseError(INVALID_FIELD, reason, raw, f"{path}[{i}][2]")
    return KrakenParseError(INVALID_FIELD, "expected decimal strings", raw, path)


def _checksum(text: str, raw: bytes, index: int) -> int:
    """The checksum ``c`` of body ``index``: an unsigned 32-bit integer, quoted."""
    if text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= 0xFFFFFFFF:
        return int(text)
    reason = f"expected an unsigned 32-bit checksum, got {text!r}"
    raise KrakenParseError(INVALID_FIELD, reason, raw, f"[{index}].c")


class KrakenV1FrameParser:
    """WebSocket v1 frames of one connection to records (see the module's docstring)."""

    __slots__ = ("_books", "_channels", "_pairs", "_ticker_ids", "_trade_ids")

    def __init__(self) -> None:
        self._books = KrakenBooks()
        self._channels: dict[bytes, tuple[str, int]] = {}  # raw channel name → (kind, depth)
        self._pairs: dict[bytes, str] = {}  # raw pair → the records' symbol
        self._ticker_ids: dict[str, int] = {}
        self._trade_ids: dict[str, int] = {}

    @property
    def books(self) -> KrakenBooks:
        """The connection's books, by symbol."""
        return self._books

    def parse(self, raw: bytes, receive_ns: int) -> ParsedFrame:
        try:
            parts = _FRAME_DECODER.decode(raw)
        except DECODE_ERRORS as exc:
            if raw.lstrip()[:1] in (b"[", "["):  # an array, but not JSON
                raise from_msgspec(exc, raw) from None
            return _event(raw)
        count = len(parts)
        if count < 4:
            reason = f"expected [channelID, body, channelName, pair], got {count} elements"
            raise KrakenParseError(INVALID_FIELD, reason, raw, None)
        channel, pair = parts[-2], parts[-1]
        kind, depth = self._channels.get(bytes(channel)) or self._channel(channel, raw, count - 2)
        symbol = self._pairs.get(bytes(pair)) or self._pair(pair, raw, count - 1)
        if kind == BOOK:
            return self._book(parts[1:-2], symbol, depth, raw, receive_ns)
        if count != 4:
            reason = f"a {kind} frame has one body, this one has {count - 3}"
            raise KrakenParseError(INVALID_FIELD, reason, raw, None)
        if kind == TRADE:
            return self._trades(parts[1], symbol, raw, receive_ns)
        return self._ticker(parts[1], symbol, raw, receive_ns)

    def _channel(self, part: msgspec.Raw, raw: bytes, index: int) -> tuple[str, int]:
        name: str = _decode(_TEXT_DECODER, part, raw, f"[{index}]")
        kind, _, depth_text = name.partition("-")
        if name in (TRADE, TICKER):
            found = (name, 0)
        elif (
            kind == BOOK
            and depth_text.isascii()
            and depth_text.isdigit()
            and int(depth_text) >= CHECKSUM_LEVELS  # Kraken's least depth
        ):
            found = (BOOK, int(depth_text))
        else:
            raise KrakenParseError(UNSUPPORTED_STREAM, f"channel {name!r}", raw, f"[{index}]")
        if len(self._channels) < _MAX_CACHED_NAMES:
            self._channels[bytes(part)] = found
        return found

    def _pair(self, part: msgspec.Raw, raw: bytes, index: int) -> str:
        pair: str = _decode(_TEXT_DECODER, part, raw, f"[{index}]")
        if not pair:
            raise KrakenParseError(INVALID_FIELD, "an empty pair", raw, f"[{index}]")
        symbol = v2_symbol(pair)
        if len(self._pairs) < _MAX_CACHED_NAMES:
            self._pairs[bytes(part)] = symbol
        return symbol

    def _book(
        self, parts: list[msgspec.Raw], symbol: str, depth: int, raw: bytes, receive_ns: int
    ) -> DepthSnapshot | DepthUpdate:
        try:
            bodies: list[V1BookBody] = [_BOOK_DECODER.decode(part) for part in parts]
        except DECODE_ERRORS:
            for index, part in enumerate(parts, start=1):  # name the body at fault
                _decode(_BOOK_DECODER, part, raw, f"[{index}]")
            raise
        first = bodies[0]
        if first.snapshot_asks is not None or first.snapshot_bids is not None:
            asks = _levels(first.snapshot_asks or (), raw, "[1].as")
            bids = _levels(first.snapshot_bids or (), raw, "[1].bs")
            book = self._books.snapshot(symbol, depth, bids, asks, None)
            return DepthSnapshot(symbol, book.update_id, bids, asks, receive_ns, VENUE_NAME, SPOT)
        asks: tuple[PriceLevel, ...] = ()
        bids: tuple[PriceLevel, ...] = ()
        event_ns, checksum = 0, None
        for index, body in enumerate(bodies, start=1):
            if body.a:
                levels, newest = _update_levels(body.a, raw, index, "a")
                asks += levels
                event_ns = max(event_ns, newest)
            if body.b:
                levels, newest = _update_levels(body.b, raw, index, "b")
                bids += levels
                event_ns = max(event_ns, newest)
            if body.c is not None:
                checksum = _checksum(body.c, raw, index)
        if checksum is None:
            reason = "a book update without its checksum"
            raise KrakenParseError(MISSING_FIELD, reason, raw, f"[{len(bodies)}].c")
        if not asks and not bids:
            reason = "a book update without levels"
            raise KrakenParseError(MISSING_FIELD, reason, raw, f"[{len(bodies)}].a")
        update_id = self._books.update(symbol, bids, asks, checksum).update_id
        return DepthUpdate(
            symbol, update_id, update_id, bids, asks, event_ns, receive_ns, VENUE_NAME, SPOT,
            checksum,
        )  # fmt: skip

    def _trades(self, part: msgspec.Raw, symbol: str, raw: bytes, receive_ns: int) -> ParsedFrame:
        rows: tuple[V1TradeRow, ...] = _decode(_TRADES_DECODER, part, raw, "[1]")
        trade_id = self._trade_ids.get(symbol, 0)
        records: list[MarketRecord] = []
        for index, row in enumerate(rows):
            _decimals((row.price, row.volume), (f"[1][{index}][0]", f"[1][{index}][1]"), raw)
            trade_ns = _seconds_ns(row.time)
            if trade_ns is None:
                reason = f"expected epoch seconds, got {row.time!r}"
                raise KrakenParseError(INVALID_FIELD, reason, raw, f"[1][{index}][2]")
            trade_id += 1
            records.append(
                Trade(
                    symbol, trade_id, row.price, row.volume, row.side == "s", trade_ns, trade_ns,
                    receive_ns, VENUE_NAME, SPOT,
                )
            )  # fmt: skip
        self._trade_ids[symbol] = trade_id
        if len(records) == 1:
            return records[0]
        return records or None

    def _ticker(self, part: msgspec.Raw, symbol: str, raw: bytes, receive_ns: int) -> BookTicker:
        body: V1TickerBody = _decode(_TICKER_DECODER, part, raw, "[1]")
        bid, ask = body.b, body.a
        values = (bid.price, bid.lot_volume, ask.price, ask.lot_volume)
        _decimals(values, ("[1].b[0]", "[1].b[2]", "[1].a[0]", "[1].a[2]"), raw)
        update_id = next_ticker_id(self._ticker_ids, symbol, receive_ns)
        return BookTicker(
            symbol, update_id, bid.price, bid.lot_volume, ask.price, ask.lot_volume, receive_ns,
            None, VENUE_NAME, SPOT,
        )  # fmt: skip


def _event(raw: bytes) -> None:
    """An event object: nothing to record, unless Kraken refused something."""
    try:
        event: V1Event = _EVENT_DECODER.decode(raw)
    except DECODE_ERRORS as exc:
        raise from_msgspec(exc, raw) from None
    if event.event == "error" or (event.event == "subscriptionStatus" and event.status == "error"):
        where = f" ({event.pair})" if event.pair else ""
        reason = f"{event.event}{where}: {event.errorMessage or 'no reason given'}"
        raise KrakenParseError(UNSUPPORTED_STREAM, reason, raw, "errorMessage")
    return None
