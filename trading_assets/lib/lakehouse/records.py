"""The trade record both sides share: what the sidecar's venue parsers build and its landing
writer appends, one JSON line each, and what bronze reads back from the landed segments.

Timestamps are integer nanoseconds since the Unix epoch: ``trade_ns`` the trade time,
``event_ns`` the exchange's event time (None when the message carries none, e.g. REST rows) and
``receive_ns`` the local receive time. Prices and quantities are the venue's decimal strings,
unchanged, so no float rounding ever happens on the way to bronze. Field names are the landed
JSON keys: renaming one would leave the segments already landed unreadable.
"""

from __future__ import annotations

import msgspec


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One trade (``@trade`` stream, ``/api/v3/trades``, ``/api/v3/historicalTrades``)."""

    symbol: str
    trade_id: int
    price: str
    quantity: str
    is_buyer_maker: bool
    trade_ns: int
    event_ns: int | None
    receive_ns: int
