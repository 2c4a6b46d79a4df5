"""Coinbase Advanced Trade WebSocket wire types: frozen msgspec structs with Coinbase's field names.

Every market-data frame has the same envelope, told apart by ``channel``::

    {"channel": "market_trades", "timestamp": "2026-08-09T21:05:48.251397169Z",
     "sequence_num": 9, "events": [...]}

``sequence_num`` counts the frames of one connection, across all its channels, from 0;
``timestamp`` is when Coinbase sent the frame (RFC 3339, up to nanoseconds). The channels a
subscription names and the ``channel`` its frames carry differ for one: ``level2`` is answered
on ``l2_data``. Prices and quantities stay the decimal strings Coinbase sends, trade ids the
digit strings it sends (parse.py turns them into ints); fields this project does not use (each
level's ``event_time``, a ticker's 24 h statistics, candles) are not declared, so msgspec skips
them, and unknown fields never break decoding. Times are RFC 3339 text, read exactly to
integer ns by :func:`rfc3339_ns`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

import msgspec

# Coinbase sends unsigned plain decimals ("65083.66", "0", "126296"); anything else is bad data.
# Possessive quantifiers (no backtracking) keep the per-frame check cheap.
DECIMAL_PATTERN = r"[0-9]++(?:\.[0-9]++)?"
# Sequence numbers must fit the int64 ids they become.
WireInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

TRADES_CHANNEL = "market_trades"
LEVEL2_CHANNEL = "l2_data"
TICKER_CHANNEL = "ticker"
HEARTBEATS_CHANNEL = "heartbeats"
SUBSCRIPTIONS_CHANNEL = "subscriptions"
CANDLES_CHANNEL = "candles"
# Channels this project may subscribe to but builds no record from: their frames are read for
# their sequence number only.
QUIET_CHANNELS = frozenset({"candles", "status", "ticker_batch"})


class MarketTrade(msgspec.Struct, frozen=True, gc=False):
    """One trade of a ``market_trades`` event. ``side`` is the maker's side (see parse.py)."""

    product_id: str
    trade_id: str
    price: str
    size: str
    time: str
    side: Literal["BUY", "SELL"]


class MarketTradesEvent(msgspec.Struct, frozen=True, gc=False):
    """``snapshot`` (the recent trades, sent once a subscription starts) or ``update``."""

    type: Literal["snapshot", "update"]
    trades: tuple[MarketTrade, ...]


class Ticker(msgspec.Struct, frozen=True, gc=False):
    """One product's ticker: the last trade's price and the best bid and ask (the parts used)."""

    product_id: str
    best_bid: str
    best_bid_quantity: str
    best_ask: str
    best_ask_quantity: str


class TickerEvent(msgspec.Struct, frozen=True, gc=False):
    """``snapshot`` or ``update``, one ticker per product that traded."""

    type: Literal["snapshot", "update"]
    tickers: tuple[Ticker, ...]


class Level(msgspec.Struct, frozen=True, gc=False):
    """One price level of a ``l2_data`` event: ``new_quantity`` is absolute, "0" removes it."""

    side: Literal["bid", "offer"]
    price_level: str
    new_quantity: str


class Level2Event(msgspec.Struct, frozen=True, gc=False):
    """A product's whole book (``snapshot``, best level first per side) or changed levels."""

    type: Literal["snapshot", "update"]
    product_id: str
    updates: tuple[Level, ...]


class _Frame(msgspec.Struct, frozen=True, gc=False, tag_field="channel"):
    """What every frame carries besides its events."""

    timestamp: str
    sequence_num: WireInt


class TradesFrame(_Frame, frozen=True, gc=False, tag=TRADES_CHANNEL):
    """A ``market_trades`` frame."""

    events: tuple[MarketTradesEvent, ...]


class Level2Frame(_Frame, frozen=True, gc=False, tag=LEVEL2_CHANNEL):
    """A ``l2_data`` frame (the ``level2`` subscription's)."""

    events: tuple[Level2Event, ...]


class TickerFrame(_Frame, frozen=True, gc=False, tag=TICKER_CHANNEL):
    """A ``ticker`` frame."""

    events: tuple[TickerEvent, ...]


class HeartbeatsFrame(_Frame, frozen=True, gc=False, tag=HEARTBEATS_CHANNEL):
    """A ``heartbeats`` frame (one a second per connection); its counter is not used."""


class SubscriptionsFrame(_Frame, frozen=True, gc=False, tag=SUBSCRIPTIONS_CHANNEL):
    """The answer to a subscribe message: every channel and product now subscribed."""


class CandlesFrame(_Frame, frozen=True, gc=False, tag=CANDLES_CHANNEL):
    """A ``candles`` frame (5-minute bars); no neutral record is built from it."""


Frame = (
    TradesFrame | Level2Frame | TickerFrame | HeartbeatsFrame | SubscriptionsFrame | CandlesFrame
)


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """Any frame read loosely, for its channel and sequence number, when ``Frame`` fails."""

    channel: str
    sequence_num: WireInt


class ErrorMessage(msgspec.Struct, frozen=True, gc=False):
    """What Coinbase sends instead of data when a request fails (no channel, no sequence)."""

    type: Literal["error"]
    message: str = ""


# -- times ----------------------------------------------------------------------------------------
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
_EPOCH = dt.date(1970, 1, 1)
_DAY_SECONDS: dict[str, int] = {}  # "2026-08-09" -> its midnight in s since the epoch
_MAX_CACHED_DAYS = 1024


def _day_seconds(day: str) -> int:
    seconds = _DAY_SECONDS.get(day)
    if seconds is None:
        seconds = (dt.date.fromisoformat(day) - _EPOCH).days * 86_400  # ValueError if no date
        if len(_DAY_SECONDS) >= _MAX_CACHED_DAYS:  # days come off the wire: bounded
            _DAY_SECONDS.clear()
        _DAY_SECONDS[day] = seconds
    return seconds


def rfc3339_ns(text: str) -> int:
    """``2026-08-09T21:05:48.228568804Z`` as integer ns since the epoch, exactly.

    Coinbase drops trailing zeros of the fraction (``...:38.50436Z``), so any number of digits
    is read; digits finer than a ns are dropped. A ``+hh:mm`` / ``-hh:mm`` offset is applied.
    Raises ValueError for anything else.
    """
    match = _RFC3339(text)
    if match is None:
        raise ValueError(f"expected an RFC 3339 time, got {text!r}")
    day, hour, minute, second, fraction, zone = match.groups()
    hours, minutes, seconds = int(hour), int(minute), int(second)
    if hours > 23 or minutes > 59 or seconds > 60:  # 60: a leap second
        raise ValueError(f"expected an RFC 3339 time, got {text!r}")
    total = _day_seconds(day) + hours * 3600 + minutes * 60 + seconds
    if zone not in ("Z", "z"):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        total -= offset if zone[0] == "+" else -offset
    ns = total * 1_000_000_000
    if fraction:
        ns += int(fraction[:9].ljust(9, "0"))
    return ns
