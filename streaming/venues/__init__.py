"""The venues the sidecar can connect to: one folder each, listed here by name.

Adding a venue is a folder ``streaming/venues/<name>/`` whose ``venue.py`` defines ``VENUE``,
an object with the interface of :class:`streaming.venues.base.Venue`, plus one line below.
A venue's module is imported only when the venue is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streaming.venues.base import Venue

VENUES: dict[str, str] = {
    "binance": "streaming.venues.binance.venue",
    "binance_futures": "streaming.venues.binance_futures.venue",
    "coinbase": "streaming.venues.coinbase.venue",
    "kraken": "streaming.venues.kraken.venue",
}
"""Each venue's name, as configured (``VENUES=binance,coinbase``), and the module of its VENUE."""


class UnknownVenueError(ValueError):
    """A venue name that is not listed in :data:`VENUES`."""


def venue(name: str) -> Venue:
    """The venue called ``name`` (case-insensitive)."""
    module = VENUES.get(name.strip().lower())
    if module is None:
        known = ", ".join(sorted(VENUES))
        raise UnknownVenueError(f"unknown venue {name!r}: the venues are {known}")
    return importlib.import_module(module).VENUE


def venue_of(instrument: str) -> tuple[Venue, str]:
    """The venue and symbol of an instrument id (``COINBASE:BTC-USD``)."""
    name, sep, symbol = instrument.partition(":")
    if not sep or not symbol:
        raise UnknownVenueError(f"{instrument!r} is not an instrument id (VENUE:SYMBOL)")
    found = venue(name)
    return found, found.symbol(symbol)
