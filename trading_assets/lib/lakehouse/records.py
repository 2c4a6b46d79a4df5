"""The trade record both sides share: what the sidecar's venue parsers build and its landing
writer appends, one JSON line each, and what bronze reads back from the landed segments.

Timestamps are integer nanoseconds since the Unix epoch: ``trade_ns`` the trade time,
``event_ns`` the exchange's event time (None when the message carries none, e.g. REST rows) and
``receive_ns`` the local receive time. Prices and quantities are the venue's decimal strings,
unchanged, so no float rounding ever happens on the way to bronze. Field names are the landed
JSON keys: renaming one would leave the segments already landed unreadable.

Every record names its venue (``BINANCE``, ``COINBASE``, ``KRAKEN``, ``BINANCE_FUTURES``) and
market (``spot`` or ``perpetual``); together with the venue's own symbol they make the
instrument id, ``COINBASE:BTC-USD``. Both fields are left out of a line when they hold their
defaults, Binance spot: that keeps Binance's lines as they were, and reads every line landed
before venues existed, all of them Binance spot, as what it is.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from trading_assets.lib.instruments import LEGACY_VENUE, instrument_id

DEFAULT_VENUE = LEGACY_VENUE
SPOT = "spot"
PERPETUAL = "perpetual"
MarketType = Literal["spot", "perpetual"]


class NamesInstrument:
    """Mixin of the records that carry ``venue`` and ``symbol``: their instrument id."""

    __slots__ = ()
    venue: str
    symbol: str

    @property
    def instrument(self) -> str:
        """The instrument id, ``BINANCE:BTCUSDT``."""
        return instrument_id(self.venue, self.symbol)


class Trade(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """One trade: ``trade_id`` counts up by one per trade of the instrument at its venue."""

    symbol: str
    trade_id: int
    price: str
    quantity: str
    is_buyer_maker: bool
    trade_ns: int
    event_ns: int | None
    receive_ns: int
    venue: str = DEFAULT_VENUE
    market: MarketType = SPOT
