"""The venue-neutral market records every venue's parser builds and the sidecar consumes.

Timestamps are integer nanoseconds since the Unix epoch: ``event_ns`` the venue's own event time
(None when the message carries none) and ``receive_ns`` the local receive time. Prices and
quantities are the venue's decimal strings, unchanged, so no float rounding ever happens here.
Each record names its ``venue`` and ``market`` (``spot`` or ``perpetual``); with the venue's own
``symbol`` they make the instrument id (``COINBASE:BTC-USD``, see :func:`instrument_id`).
:class:`Trade` is lib's, since bronze reads it back from the landed segments; the defaults
(Binance spot) and why they are what they are are told there.
"""

from __future__ import annotations

import msgspec

from trading_assets.lib.lakehouse.records import (
    DEFAULT_VENUE,
    PERPETUAL,
    SPOT,
    MarketType,
    NamesInstrument,
    Trade,
    instrument_id,
)

PriceLevel = tuple[str, str]
"""(price, quantity); a quantity of zero removes the level."""


class BookTicker(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """Best bid and ask; ``update_id`` orders one instrument's tickers (newer is larger)."""

    symbol: str
    update_id: int
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    receive_ns: int
    event_ns: int | None = None
    venue: str = DEFAULT_VENUE
    market: MarketType = SPOT


class DepthUpdate(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """Levels changed between update ids ``first..final`` (quantity "0": the level is gone).

    ``checksum`` is the venue's CRC32 of its top of book after this update, where it sends one
    (Kraken); a book keeper compares its own against it.
    """

    symbol: str
    first_update_id: int
    final_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    event_ns: int
    receive_ns: int
    venue: str = DEFAULT_VENUE
    market: MarketType = SPOT
    checksum: int | None = None


class DepthSnapshot(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """A whole order book as of ``last_update_id``, best level first on each side."""

    symbol: str
    last_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    receive_ns: int
    venue: str = DEFAULT_VENUE
    market: MarketType = SPOT
    checksum: int | None = None


class FundingRate(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """A perpetual's mark price and funding: ``funding_rate`` is paid by longs to shorts (a
    fraction, per funding interval) at ``next_funding_ns``."""

    symbol: str
    mark_price: str
    index_price: str | None
    funding_rate: str
    next_funding_ns: int | None
    event_ns: int
    receive_ns: int
    venue: str = DEFAULT_VENUE
    market: MarketType = PERPETUAL


MarketRecord = Trade | BookTicker | DepthUpdate | DepthSnapshot | FundingRate

__all__ = [
    "DEFAULT_VENUE",
    "PERPETUAL",
    "SPOT",
    "BookTicker",
    "DepthSnapshot",
    "DepthUpdate",
    "FundingRate",
    "MarketRecord",
    "MarketType",
    "PriceLevel",
    "Trade",
    "instrument_id",
]
