"""Kraken spot wire types (WebSocket v2 and v1), the text formats they carry, and the parse error.

v2 (``wss://ws.kraken.com/v2``) sends JSON objects tagged by ``channel``; prices and quantities
are JSON *numbers* written with the pair's full precision (``"qty":0.00100000``), and the book
checksum is computed over those digits. They are decoded with ``float_hook=str`` into fields
typed ``Any``, so each arrives as the literal text Kraken wrote (an integer literal as an int),
never as a float. Times are RFC3339 strings (``2023-10-06T17:35:55.440295Z``).

v1 (``wss://ws.kraken.com``) sends arrays ``[channelID, {...}, channelName, pair]`` with
decimals quoted as strings and times as decimal epoch seconds (``"1618678133.365913"``), plus
event objects (``{"event":"heartbeat"}``, ``systemStatus``, ``subscriptionStatus``).

Field names are Kraken's own; unknown fields are ignored so additions to the API do not break
decoding.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal, cast

import msgspec

from streaming.venues.errors import VenueParseError
from streaming.venues.errors import from_msgspec as _from_msgspec

# Plain unsigned decimals, as Kraken writes them ("0.000022900", "45285.2", "5").
DECIMAL_PATTERN = r"[0-9]++(?:\.[0-9]++)?"
# Each decimal followed by one space: one regex call checks every decimal of a frame (a space
# inside a value changes the count of separators, which the callers compare).
DECIMAL_RUN = re.compile(f"(?:{DECIMAL_PATTERN} )*+").fullmatch
_DECIMAL = re.compile(f"{DECIMAL_PATTERN}\\Z").match
# A JSON number in exponent form (accepted from v2, rewritten as a plain decimal; the exponent
# is bounded so that the plain text stays short).
_EXPONENT_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{1,2}\Z").match
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,18}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))\Z"
).match
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

WireInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Crc32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class KrakenParseError(VenueParseError):
    """A Kraken frame that cannot be turned into records (see VenueParseError)."""


def from_msgspec(exc: Exception, raw: bytes | str, prefix: str = "") -> KrakenParseError:
    """A msgspec decode or validation error as a KrakenParseError naming the field."""
    return cast(KrakenParseError, _from_msgspec(exc, raw, prefix, KrakenParseError))


# -- text formats -------------------------------------------------------------------------------


def number_text(value: Any) -> str | None:
    """A v2 number field as its plain decimal text, or None when it is not a non-negative number.

    ``value`` is what ``float_hook=str`` decoding gives: the literal text of a JSON number with a
    fraction or exponent, an int for an integer literal (anything else is not a number; a quoted
    decimal string is taken as its text).
    """
    if type(value) is str:
        if _DECIMAL(value):
            return value
        if _EXPONENT_NUMBER(value):
            return format(Decimal(value), "f")
        return None
    if type(value) is int and value >= 0:
        return str(value)
    return None


@lru_cache(maxsize=64)
def _day_seconds(date: str) -> int | None:
    try:
        return (dt.date.fromisoformat(date).toordinal() - _EPOCH_ORDINAL) * 86_400
    except ValueError:
        return None


def rfc3339_ns(text: str) -> int | None:
    """An RFC3339 time (``2023-10-06T17:35:55.440295Z``, any offset) as int ns since the epoch,
    exactly (no float on the way; digits finer than a ns are dropped); None when it is not one."""
    match = _RFC3339(text)
    if match is None:
        return None
    date, hours, minutes, seconds, fraction, _, sign, offset_h, offset_m = match.groups()
    day = _day_seconds(date)
    hh, mm, ss = int(hours), int(minutes), int(seconds)
    if day is None or hh > 23 or mm > 59 or ss > 60:  # 60: a leap second
        return None
    total = day + hh * 3600 + mm * 60 + ss
    if sign is not None:
        oh, om = int(offset_h), int(offset_m)
        if oh > 23 or om > 59:
            return None
        total -= (oh * 3600 + om * 60) * (1 if sign == "+" else -1)
    return total * 1_000_000_000 + (int(fraction[:9].ljust(9, "0")) if fraction else 0)


# v1 spells some assets by their old ISO-like names; v2 (and the records) use the current ones.
V1_TO_V2_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}
V2_TO_V1_ASSETS = {v2: v1 for v1, v2 in V1_TO_V2_ASSETS.items()}


def v2_symbol(pair: str) -> str:
    """A pair as v2 and the records spell it: ``XBT/CHF`` → ``BTC/CHF``."""
    base, sep, quote = pair.partition("/")
    if not sep:
        return pair
    return f"{V1_TO_V2_ASSETS.get(base, base)}/{V1_TO_V2_ASSETS.get(quote, quote)}"


def v1_pair(symbol: str) -> str:
    """A v2 symbol as v1 spells the pair: ``BTC/CHF`` → ``XBT/CHF``."""
    base, sep, quote = symbol.partition("/")
    if not sep:
        return symbol
    return f"{V2_TO_V1_ASSETS.get(base, base)}/{V2_TO_V1_ASSETS.get(quote, quote)}"


# -- WebSocket v2 -------------------------------------------------------------------------------


class V2Level(msgspec.Struct, frozen=True, gc=False):
    """One book level ``{"price": 0.5666, "qty": 4831.75496356}`` (numbers as their text)."""

    price: Any
    qty: Any


class V2BookData(msgspec.Struct, frozen=True, gc=False):
    """The one element of a ``book`` message's ``data``: levels and the CRC32 of the top 10."""

    symbol: str
    checksum: Crc32
    bids: tuple[V2Level, ...] = ()
    asks: tuple[V2Level, ...] = ()
    timestamp: str | None = None


class V2BookMessage(msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="book"):
    """``{"channel":"book","type":"snapshot"|"update","data":[...]}``."""

    type: Literal["snapshot", "update"]
    data: tuple[V2BookData, ...]


class V2TradeData(msgspec.Struct, frozen=True, gc=False):
    """One trade: ``side`` is the taker's; ``trade_id`` counts the pair's trades."""

    symbol: str
    side: Literal["buy", "sell"]
    price: Any
    qty: Any
    trade_id: WireInt
    timestamp: str
    ord_type: str | None = None


class V2TradeMessage(msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="trade"):
    """``{"channel":"trade","type":"snapshot"|"update","data":[...]}``."""

    type: Literal["snapshot", "update"]
    data: tuple[V2TradeData, ...]


class V2TickerData(msgspec.Struct, frozen=True, gc=False):
    """Level 1: best bid and ask (the 24 h statistics Kraken adds are not read)."""

    symbol: str
    bid: Any
    bid_qty: Any
    ask: Any
    ask_qty: Any
    timestamp: str | None = None


class V2TickerMessage(msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="ticker"):
    """``{"channel":"ticker","type":"snapshot"|"update","data":[...]}``."""

    type: Literal["snapshot", "update"]
    data: tuple[V2TickerData, ...]


class V2HeartbeatMessage(
    msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="heartbeat"
):
    """``{"channel":"heartbeat"}``, about once a second while nothing else is sent."""


class V2StatusMessage(msgspec.Struct, frozen=True, gc=False, tag_field="channel", tag="status"):
    """``{"channel":"status","type":"update","data":[{"system":"online",...}]}`` (not read)."""


V2ChannelMessage = (
    V2BookMessage | V2TradeMessage | V2TickerMessage | V2HeartbeatMessage | V2StatusMessage
)


class V2Envelope(msgspec.Struct, frozen=True, gc=False):
    """What any v2 frame is: a channel's message, or the answer to a ``method`` request."""

    channel: str | None = None
    method: str | None = None


class V2AckResult(msgspec.Struct, frozen=True, gc=False):
    """``result`` of a subscribe answer: one per symbol (``depth`` for ``book``)."""

    channel: str | None = None
    symbol: str | None = None
    depth: WireInt | None = None


class V2MethodResponse(msgspec.Struct, frozen=True, gc=False):
    """``{"method":"subscribe","result":{...},"success":true,"time_in":...,"time_out":...}``."""

    method: str
    success: bool | None = None
    error: str | None = None
    result: V2AckResult | None = None


# -- WebSocket v1 -------------------------------------------------------------------------------


class V1Level(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """``[price, volume, timestamp]``, with ``"r"`` appended for a republished level."""

    price: str
    volume: str
    timestamp: str
    flag: str = ""


V1Levels = tuple[V1Level, ...]


class V1BookBody(msgspec.Struct, frozen=True, gc=False):
    """A ``book-<depth>`` body: a snapshot (``as``/``bs``) or an update (``a``/``b``, the
    checksum ``c`` in the frame's last body)."""

    snapshot_asks: V1Levels | None = msgspec.field(default=None, name="as")
    snapshot_bids: V1Levels | None = msgspec.field(default=None, name="bs")
    a: V1Levels = ()
    b: V1Levels = ()
    c: str | None = None


class V1TradeRow(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """``[price, volume, time, side, orderType, misc]``; ``side`` (``b``/``s``) is the taker's."""

    price: str
    volume: str
    time: str
    side: Literal["b", "s"]
    order_type: str
    misc: str = ""


class V1TickerSide(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """``[price, wholeLotVolume, lotVolume]`` of the best ask (``a``) or bid (``b``)."""

    price: str
    whole_lot_volume: int | str
    lot_volume: str


class V1TickerBody(msgspec.Struct, frozen=True, gc=False):
    """A ``ticker`` body (the 24 h statistics are not read)."""

    a: V1TickerSide
    b: V1TickerSide


class V1Event(msgspec.Struct, frozen=True, gc=False):
    """An event object: ``heartbeat``, ``systemStatus``, ``subscriptionStatus``, ``pong``."""

    event: str
    status: str | None = None
    errorMessage: str | None = None
    pair: str | None = None
