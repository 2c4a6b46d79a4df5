"""The landed L2 book lines both sides share: what the sidecar's book recorder lands, one JSON
line each, and what the lakehouse reads back.

A book is landed in *segments*. A segment starts with a ``sync`` snapshot (the whole book right
after the venue's procedure synced it: at start, and after every gap), then holds every diff the
live book applied, in order, and a ``periodic`` snapshot of the whole book every so often. A gap
(a broken diff chain, a reconnect) ends the segment: the next one starts with a new ``sync``
snapshot whose ``gap`` says why. Within a segment the diffs chain (``first_update_id`` = the
previous ``final_update_id`` + 1, the first one continuing the sync snapshot), so the book at
any point is the sync snapshot plus the diffs up to it, and every periodic snapshot must equal
that (:mod:`trading_assets.lib.book.rebuild` checks it).

Prices and quantities are the venue's decimal strings, unchanged; a quantity of zero removes
the level. Times are integer ns: ``event_ns`` the venue's, ``receive_ns`` / ``taken_ns`` local.
Field names are the landed JSON keys.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from trading_assets.lib.lakehouse.records import (
    DEFAULT_VENUE,
    SPOT,
    MarketType,
    NamesInstrument,
)

PriceLevel = tuple[str, str]
SnapshotKind = Literal["sync", "periodic"]
SYNC: SnapshotKind = "sync"
PERIODIC: SnapshotKind = "periodic"


class BookDiff(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """One diff the live book applied: the levels that changed over update ids
    ``first_update_id..final_update_id`` of segment ``segment``."""

    symbol: str
    segment: int
    first_update_id: int
    final_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    event_ns: int
    receive_ns: int
    venue: str = DEFAULT_VENUE
    market: MarketType = SPOT


class BookSnapshot(msgspec.Struct, NamesInstrument, frozen=True, gc=False, omit_defaults=True):
    """The whole live book as of ``last_update_id`` (best level first on each side), taken at
    ``taken_ns``: a segment's ``sync`` snapshot or a ``periodic`` one. A sync snapshot's ``gap``
    says why the previous segment ended and ``lost_ns`` when the sidecar saw it (both None when
    nothing was lost: the first of a run, or a new UTC day)."""

    symbol: str
    segment: int
    kind: SnapshotKind
    last_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    taken_ns: int
    gap: str | None = None
    venue: str = DEFAULT_VENUE
    market: MarketType = SPOT
    lost_ns: int | None = None


BookLine = BookDiff | BookSnapshot
