"""Coinbase Advanced Trade frames to neutral records, one parser per connection.

Frames as Coinbase sends them on ``wss://advanced-trade-ws.coinbase.com`` (abridged)::

    {"channel":"market_trades","timestamp":"2026-08-09T21:05:48.251397169Z","sequence_num":9,
     "events":[{"type":"update","trades":[{"product_id":"BTC-USD","trade_id":"1068572091",
     "price":"65083.67","size":"0.01034361","time":"2026-08-09T21:05:48.167634Z","side":"SELL"}]}]}
    {"channel":"ticker","timestamp":"...","sequence_num":10,"events":[{"type":"update","tickers":
     [{"type":"ticker","product_id":"ETH-USD","price":"1919.41",...,"best_bid":"1919.44",
     "best_ask":"1919.49","best_bid_quantity":"0.02858092","best_ask_quantity":"0.07814824"}]}]}
    {"channel":"l2_data","timestamp":"...","sequence_num":14,"events":[{"type":"update",
     "product_id":"BTC-USD","updates":[{"side":"bid","event_time":"2026-08-09T21:05:48.210883Z",
     "price_level":"65062.5","new_quantity":"0.00583"}]}]}

What each channel becomes:

- ``market_trades``: one :class:`Trade` per trade, those of the snapshot (the product's recent
  trades, sent when the subscription starts) as well as those of every update, ascending by
  trade id within a frame (Coinbase lists them newest first). ``trade_ns`` is the trade's
  ``time``, ``event_ns`` the frame's ``timestamp``, both read exactly from RFC 3339 text
  (:func:`~streaming.venues.coinbase.wire.rfc3339_ns`). ``is_buyer_maker`` is
  ``side == "BUY"``: Coinbase's ``side`` of a public trade is the side of the *maker*, the
  order that rested on the book, as Coinbase's Exchange API documents for its trades ("the side
  of a trade indicates the maker order side"; Advanced Trade's spot products trade on that
  exchange, ``product_venue`` ``CBE``). The real recording bears it out: trades marked SELL
  print at the best ask (a taker bought from a resting seller), those marked BUY at the best
  bid. Trade ids count up by one per product.
- ``ticker``: one :class:`BookTicker` per ticker, ``update_id`` the frame's ``sequence_num``.
- ``l2_data`` (the ``level2`` subscription): a ``snapshot`` event becomes a
  :class:`DepthSnapshot` (best level first, as sent), an ``update`` a :class:`DepthUpdate`, both
  with the frame's ``sequence_num`` as update ids and levels as (price, new quantity); "0"
  removes a level. Each level's own ``event_time`` is not kept.
- ``heartbeats``, ``subscriptions`` and the channels no neutral record exists for
  (``candles``, ``status``, ``ticker_batch``): None, once their sequence number is counted.

A parse returns one record, a list when the frame holds several, or None.

Sequence rules (:class:`CoinbaseFrameParser`): ``sequence_num`` counts one connection's frames
across all channels by one. The first frame sets the count; a jump raises
:class:`~streaming.venues.base.Resync` (``sequence_gap``): some frame was lost, and Coinbase
never sends it again. A number already passed (a repeat or an older frame) can carry nothing a
client still needs, since what it held was applied when the number was first seen: it is
dropped and counted in ``stale_frames``. A frame whose number cannot be read at all counts as
lost, so the next one raises the gap. An ``l2_data`` frame that fails to parse leaves the
product's book unknown: it is dead-lettered (:class:`CoinbaseParseError`) and the next frame
raises ``Resync("book_lost")``; so does an update of a product whose snapshot never came.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import cast

import msgspec

from streaming.records import SPOT, BookTicker, DepthSnapshot, DepthUpdate, MarketRecord, Trade
from streaming.venues.base import ParsedFrame, Resync
from streaming.venues.coinbase.wire import (
    DECIMAL_PATTERN,
    LEVEL2_CHANNEL,
    QUIET_CHANNELS,
    Envelope,
    ErrorMessage,
    Frame,
    Level2Frame,
    TickerFrame,
    TradesFrame,
    rfc3339_ns,
)
from streaming.venues.errors import (
    INVALID_FIELD,
    UNSUPPORTED_STREAM,
    VenueParseError,
    as_bytes,
)
from streaming.venues.errors import from_msgspec as _from_msgspec

VENUE_NAME = "COINBASE"
MAX_ID = 2**63 - 1  # trade ids land in int64 columns
KNOWN_CHANNELS = frozenset(
    {"market_trades", "l2_data", "ticker", "heartbeats", "subscriptions", *QUIET_CHANNELS}
)
# ValidationError is a DecodeError; msgspec raises RecursionError for absurdly nested input.
DECODE_ERRORS = (msgspec.DecodeError, RecursionError)


class CoinbaseParseError(VenueParseError):
    """A Coinbase frame that cannot be turned into records (see VenueParseError)."""


def from_msgspec(exc: Exception, raw: bytes | str, prefix: str = "") -> CoinbaseParseError:
    """A msgspec decode or validation error as a CoinbaseParseError naming the field."""
    return cast(CoinbaseParseError, _from_msgspec(exc, raw, prefix, CoinbaseParseError))


def _time_ns(text: str, raw: bytes, field: str) -> int:
    try:
        return rfc3339_ns(text)
    except ValueError as exc:
        raise CoinbaseParseError(INVALID_FIELD, str(exc), raw, field) from None


# -- decimals and ids -----------------------------------------------------------------------------
# Each decimal followed by one space; a space inside a value changes the count of separators.
_DECIMAL_RUN = re.compile(f"(?:{DECIMAL_PATTERN} )*+").fullmatch
_DIGITS = re.compile("[0-9]+").fullmatch


def _all_decimals(values: Sequence[str]) -> bool:
    """True when every value is a plain unsigned decimal (one regex call for all of them)."""
    if not values:
        return True
    text = " ".join(values) + " "
    return _DECIMAL_RUN(text) is not None and text.count(" ") == len(values)


def _bad_decimal(fields: Iterator[tuple[str, str]], raw: bytes) -> CoinbaseParseError:
    """Name the first field whose value is not a plain decimal (slow path, errors only)."""
    for path, value in fields:
        if not _all_decimals((value,)):
            reason = f"expected a decimal string, got {value!r}"
            return CoinbaseParseError(INVALID_FIELD, reason, raw, path)
    return CoinbaseParseError(INVALID_FIELD, "expected decimal strings", raw, None)


# -- records --------------------------------------------------------------------------------------
_BY_TRADE_ID = attrgetter("trade_id")


def trades_of(frame: TradesFrame, receive_ns: int, raw: bytes) -> list[Trade]:
    """A ``market_trades`` frame's trades, ascending by trade id."""
    event_ns = _time_ns(frame.timestamp, raw, "timestamp")
    trades: list[Trade] = []
    texts: list[str] = []
    try:
        for event in frame.events:
            for trade in event.trades:
                trade_id = int(trade.trade_id)  # its digits are checked with the decimals
                if trade_id > MAX_ID:
                    raise ValueError
                trades.append(
                    Trade(
                        trade.product_id,
                        trade_id,
                        trade.price,
                        trade.size,
                        trade.side == "BUY",  # the maker bought: the taker sold into the bid
                        rfc3339_ns(trade.time),
                        event_ns,
                        receive_ns,
                        VENUE_NAME,
                        SPOT,
                    )
                )
                texts += (trade.trade_id, trade.price, trade.size)
    except ValueError:
        raise _bad_trade(frame, raw) from None
    if not _all_decimals(texts):
        raise _bad_trade(frame, raw)
    if len(trades) > 1:
        trades.sort(key=_BY_TRADE_ID)
    return trades


def _bad_trade(frame: TradesFrame, raw: bytes) -> CoinbaseParseError:
    """Name the first field of a trade that cannot be read (slow path, errors only)."""
    for e, event in enumerate(frame.events):
        for t, trade in enumerate(event.trades):
            where = f"events[{e}].trades[{t}]"
            if _DIGITS(trade.trade_id) is None or int(trade.trade_id) > MAX_ID:
                reason = f"expected a trade id of digits within int64, got {trade.trade_id!r}"
                return CoinbaseParseError(INVALID_FIELD, reason, raw, f"{where}.trade_id")
            fields = ((f"{where}.price", trade.price), (f"{where}.size", trade.size))
            for path, value in fields:
                if not _all_decimals((value,)):
                    reason = f"expected a decimal string, got {value!r}"
                    return CoinbaseParseError(INVALID_FIELD, reason, raw, path)
            try:
                rfc3339_ns(trade.time)
            except ValueError as exc:
                return CoinbaseParseError(INVALID_FIELD, str(exc), raw, f"{where}.time")
    return CoinbaseParseError(INVALID_FIELD, "a trade cannot be read", raw, None)


_TICKER_FIELDS = ("best_bid", "best_bid_quantity", "best_ask", "best_ask_quantity")


def tickers_of(frame: TickerFrame, receive_ns: int, raw: bytes) -> list[BookTicker]:
    """A ``ticker`` frame's best bids and asks, ``update_id`` its sequence number."""
    event_ns = _time_ns(frame.timestamp, raw, "timestamp")
    sequence = frame.sequence_num
    tickers: list[BookTicker] = []
    for e, event in enumerate(frame.events):
        for t, ticker in enumerate(event.tickers):
            values = (
                ticker.best_bid,
                ticker.best_bid_quantity,
                ticker.best_ask,
                ticker.best_ask_quantity,
            )
            if not _all_decimals(values):
                where = f"events[{e}].tickers[{t}]"
                fields = zip(_TICKER_FIELDS, values, strict=True)
                raise _bad_decimal(((f"{where}.{name}", v) for name, v in fields), raw)
            tickers.append(
                BookTicker(
                    ticker.product_id, sequence, *values, receive_ns, event_ns, VENUE_NAME, SPOT
                )
            )
    return tickers


def depth_of(frame: Level2Frame, receive_ns: int, raw: bytes) -> list[DepthSnapshot | DepthUpdate]:
    """A ``l2_data`` frame's snapshots and updates, update ids its sequence number."""
    event_ns = _time_ns(frame.timestamp, raw, "timestamp")
    sequence = frame.sequence_num
    records: list[DepthSnapshot | DepthUpdate] = []
    for e, event in enumerate(frame.events):
        levels = event.updates
        text = " ".join([f"{x.price_level} {x.new_quantity}" for x in levels]) + " "
        if levels and (_DECIMAL_RUN(text) is None or text.count(" ") != 2 * len(levels)):
            fields = (
                (f"events[{e}].updates[{i}].{name}", value)
                for i, x in enumerate(levels)
                for name, value in (
                    ("price_level", x.price_level),
                    ("new_quantity", x.new_quantity),
                )
            )
            raise _bad_decimal(fields, raw)
        bids = tuple([(x.price_level, x.new_quantity) for x in levels if x.side == "bid"])
        asks = tuple([(x.price_level, x.new_quantity) for x in levels if x.side == "offer"])
        symbol = event.product_id
        if event.type == "snapshot":
            records.append(
                DepthSnapshot(symbol, sequence, bids, asks, receive_ns, VENUE_NAME, SPOT)
            )
        else:
            records.append(
                DepthUpdate(
                    symbol, sequence, sequence, bids, asks, event_ns, receive_ns, VENUE_NAME, SPOT
                )
            )
    return records


def _one_or_many(records: Sequence[MarketRecord]) -> ParsedFrame:
    if len(records) == 1:
        return records[0]
    return list(records) if records else None


# -- the parser -----------------------------------------------------------------------------------
_FRAME_DECODER: msgspec.json.Decoder[Frame] = msgspec.json.Decoder(Frame)
_ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)
_ERROR_DECODER = msgspec.json.Decoder(ErrorMessage)


class CoinbaseFrameParser:
    """One connection's frames to records, in arrival order (the module's docstring tells the
    sequence rules). After a :class:`Resync` the connection is done: use a new parser."""

    __slots__ = ("_book_lost", "_snapshots", "next_sequence", "stale_frames")

    def __init__(self) -> None:
        self.next_sequence: int | None = None
        """The sequence number the next frame must carry; None before the first frame."""
        self.stale_frames = 0
        """Frames dropped because their sequence number was already passed."""
        self._snapshots: set[str] = set()  # products whose level2 snapshot has arrived
        self._book_lost: str | None = None

    def parse(self, raw: bytes, receive_ns: int) -> ParsedFrame:
        if self._book_lost is not None:
            raise Resync("book_lost", self._book_lost)
        if type(raw) is not bytes:  # a text frame, or a buffer: errors keep bytes
            raw = as_bytes(raw)
        try:
            frame = _FRAME_DECODER.decode(raw)
        except DECODE_ERRORS as exc:
            return self._unread(raw, exc)
        if not self._in_sequence(frame.sequence_num):
            return None
        kind = type(frame)
        if kind is Level2Frame:
            return self._depth(cast(Level2Frame, frame), receive_ns, raw)
        if kind is TickerFrame:
            return _one_or_many(tickers_of(cast(TickerFrame, frame), receive_ns, raw))
        if kind is TradesFrame:
            return _one_or_many(trades_of(cast(TradesFrame, frame), receive_ns, raw))
        return None  # heartbeats, subscriptions, candles

    def _in_sequence(self, sequence: int) -> bool:
        """Count ``sequence``; False for a number already passed (the frame is dropped)."""
        expected = self.next_sequence
        if expected is not None and sequence != expected:
            if sequence < expected:
                self.stale_frames += 1
                return False
            raise Resync("sequence_gap", f"expected sequence_num {expected} got {sequence}")
        self.next_sequence = sequence + 1
        return True

    def _depth(self, frame: Level2Frame, receive_ns: int, raw: bytes) -> ParsedFrame:
        try:
            records = depth_of(frame, receive_ns, raw)
        except CoinbaseParseError:
            self._book_lost = f"l2_data frame {frame.sequence_num} could not be parsed"
            raise
        for record in records:
            if type(record) is DepthSnapshot:
                self._snapshots.add(record.symbol)
            elif record.symbol not in self._snapshots:
                raise Resync(
                    "book_lost",
                    f"{record.symbol} update at sequence_num {frame.sequence_num} "
                    "before its snapshot",
                )
        return _one_or_many(records)

    def _unread(self, raw: bytes, exc: Exception) -> ParsedFrame:
        """A frame the typed decode refused: count its sequence number if it has one, then say
        what is wrong with it (None for a stale frame or a channel without records)."""
        try:
            envelope = _ENVELOPE_DECODER.decode(raw)
        except DECODE_ERRORS:
            raise self._not_a_frame(raw, exc) from None
        if not self._in_sequence(envelope.sequence_num):
            return None
        channel = envelope.channel
        if channel in QUIET_CHANNELS:
            return None
        if channel not in KNOWN_CHANNELS:
            reason = f"channel {channel!r} is not one this parser reads"
            raise CoinbaseParseError(UNSUPPORTED_STREAM, reason, raw, "channel")
        if channel == LEVEL2_CHANNEL:
            self._book_lost = f"l2_data frame {envelope.sequence_num} could not be parsed"
        raise from_msgspec(exc, raw)

    @staticmethod
    def _not_a_frame(raw: bytes, exc: Exception) -> CoinbaseParseError:
        """The error for bytes without a channel and sequence number: Coinbase's own error
        message when it is one (a refused subscription), else what the decoder found."""
        try:
            message = _ERROR_DECODER.decode(raw)
        except DECODE_ERRORS:
            return from_msgspec(exc, raw)
        reason = f"Coinbase error: {message.message}"
        return CoinbaseParseError(UNSUPPORTED_STREAM, reason, raw, "type")


def parse_frames(frames: Sequence[tuple[bytes, int]]) -> list[MarketRecord]:
    """Every record of one connection's frames ``(raw, receive_ns)``, in order (a convenience
    for replays; raises like :meth:`CoinbaseFrameParser.parse`)."""
    parser = CoinbaseFrameParser()
    records: list[MarketRecord] = []
    for raw, receive_ns in frames:
        parsed = parser.parse(raw, receive_ns)
        if type(parsed) is list:
            records += cast(list[MarketRecord], parsed)
        elif parsed is not None:
            records.append(cast(MarketRecord, parsed))
    return records


__all__ = [
    "DECODE_ERRORS",
    "KNOWN_CHANNELS",
    "VENUE_NAME",
    "CoinbaseFrameParser",
    "CoinbaseParseError",
    "depth_of",
    "from_msgspec",
    "parse_frames",
    "rfc3339_ns",
    "tickers_of",
    "trades_of",
]
