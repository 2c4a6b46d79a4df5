"""Instrument ids: what the lakehouse, the feature store and the sidecar key their data by.

An instrument id is ``VENUE:SYMBOL``, the venue's name (upper case, as :mod:`streaming.venues`
lists it) and the symbol as that venue spells it: ``BINANCE:BTCUSDT``, ``COINBASE:BTC-USD``,
``KRAKEN:BTC/USD``, ``BINANCE_FUTURES:BTCUSDT``. It is a partition key, a Feast entity value and
a label, so it is checked once here: a venue name, a colon, and 1–32 of the characters venues
use in symbols.

Where an id must name a folder or an object key, :func:`path_name` spells it without ``/``.
Data from before venues existed names a bare symbol (``BTCUSDT``): it was all Binance spot, and
:func:`legacy_instrument` says so.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote, unquote

LEGACY_VENUE = "BINANCE"
"""The venue of every bare symbol: the only venue there was before instrument ids."""

_ID = re.compile(r"^(?P<venue>[A-Z][A-Z0-9_]{0,31}):(?P<symbol>[A-Z0-9][A-Z0-9./_-]{0,31})$")


PERPETUAL_VENUES = frozenset({"BINANCE_FUTURES"})
"""Venues whose instruments are perpetual futures (every other venue listed trades spot)."""


class InstrumentError(ValueError):
    """Text that is not an instrument id (the message says what one looks like)."""


def instrument_id(venue: str, symbol: str) -> str:
    """``VENUE:SYMBOL``, the symbol as the venue spells it."""
    return f"{venue}:{symbol}"


def parse_instrument(text: str) -> tuple[str, str]:
    """(venue, symbol) of an instrument id; lower case reads as upper case."""
    match = _ID.match(text.strip().upper())
    if match is None:
        raise InstrumentError(
            f"{text!r} is not an instrument id: write VENUE:SYMBOL, e.g. BINANCE:BTCUSDT or "
            "COINBASE:BTC-USD"
        )
    return match["venue"], match["symbol"]


def normalized(text: str) -> str:
    """The instrument id ``text`` names, in its one spelling (upper case, checked)."""
    return instrument_id(*parse_instrument(text))


def market_of(instrument: str) -> Literal["spot", "perpetual"]:
    """``perpetual`` for an instrument of a perpetual futures venue, else ``spot`` (the
    ``market`` its records carry)."""
    venue, _ = parse_instrument(instrument)
    return "perpetual" if venue in PERPETUAL_VENUES else "spot"


def legacy_instrument(symbol: str) -> str:
    """The instrument a bare symbol of data from before venues names: Binance spot's."""
    return normalized(instrument_id(LEGACY_VENUE, symbol))


def path_name(instrument: str) -> str:
    """The id as one folder or key segment (``/`` and ``%`` escaped): ``KRAKEN:BTC%2FUSD``."""
    return quote(instrument, safe=":_-.")


def from_path_name(name: str) -> str:
    """The instrument a folder or key segment names; a bare symbol is a legacy one."""
    text = unquote(name)
    return normalized(text) if ":" in text else legacy_instrument(text)
