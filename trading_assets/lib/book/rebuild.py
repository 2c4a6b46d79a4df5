"""Rebuild a landed L2 book from its lines, and hold it to its own snapshots.

The rebuild is the batch twin of the sidecar's live book: within each segment it starts from the
``sync`` snapshot, applies every diff in update-id order (a diff whose ids the book already holds
is skipped, as live skips it; a diff that does not continue the chain breaks the segment), and
compares the book with every ``periodic`` snapshot of the segment, level for level, in exact
integer units of 1e-8. A rebuild that matches every snapshot proves the landed diffs are the
whole story: nothing lost, reordered or changed between the live book and the lakehouse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from trading_assets.lib.book.lines import PERIODIC, SYNC, BookDiff, BookSnapshot, PriceLevel
from trading_assets.lib.features.live import decimal_units

Side = dict[int, int]  # price → quantity, both in 1e-8 units


def _apply(side: Side, levels: Iterable[PriceLevel]) -> None:
    for price, quantity in levels:
        units = decimal_units(quantity)
        if units:
            side[decimal_units(price)] = units
        else:  # removing a level the book does not hold is normal (beyond the snapshot's depth)
            side.pop(decimal_units(price), None)


def _side(levels: Iterable[PriceLevel]) -> Side:
    side: Side = {}
    _apply(side, levels)
    return side


@dataclass
class Book:
    """One instrument's book in integer units as of ``last_update_id``."""

    last_update_id: int
    bids: Side = field(default_factory=dict)
    asks: Side = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: BookSnapshot) -> Book:
        return cls(snapshot.last_update_id, _side(snapshot.bids), _side(snapshot.asks))

    def apply(self, diff: BookDiff) -> None:
        """Apply one diff that continues the book (the caller checks the chain)."""
        _apply(self.bids, diff.bids)
        _apply(self.asks, diff.asks)
        self.last_update_id = diff.final_update_id

    def best(self) -> tuple[int | None, int | None]:
        """The best bid and the best ask price (1e-8 units; None for an empty side)."""
        return max(self.bids, default=None), min(self.asks, default=None)

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


@dataclass(frozen=True)
class Mismatch:
    """Where a rebuild and the landed lines disagree (one line of a report)."""

    segment: int
    last_update_id: int
    what: str


@dataclass
class RebuildReport:
    """What a rebuild found: per segment, the diffs applied and the snapshots matched."""

    segments: int = 0
    diffs_applied: int = 0
    diffs_skipped: int = 0
    snapshots_matched: int = 0
    crossed: int = 0  # diffs after which the book was crossed
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.crossed


def _differences(book: Book, snapshot: BookSnapshot) -> str | None:
    if book.last_update_id != snapshot.last_update_id:
        return f"the book is at update {book.last_update_id}"
    for name, side, levels in (
        ("bid", book.bids, snapshot.bids),
        ("ask", book.asks, snapshot.asks),
    ):
        landed = _side(levels)
        if side != landed:
            extra = sorted(set(side.items()) - set(landed.items()))[:3]
            missing = sorted(set(landed.items()) - set(side.items()))[:3]
            return f"{name} levels differ: rebuilt has {extra} more, lacks {missing}"
    return None


def rebuild(diffs: Sequence[BookDiff], snapshots: Sequence[BookSnapshot]) -> RebuildReport:
    """Rebuild one instrument's book from its landed lines and check it (see the module)."""
    report = RebuildReport()
    by_segment: dict[int, tuple[list[BookSnapshot], list[BookDiff]]] = {}
    for snapshot in snapshots:
        by_segment.setdefault(snapshot.segment, ([], []))[0].append(snapshot)
    for diff in diffs:
        by_segment.setdefault(diff.segment, ([], []))[1].append(diff)
    for segment in sorted(by_segment):
        segment_snapshots, segment_diffs = by_segment[segment]
        _rebuild_segment(segment, segment_snapshots, segment_diffs, report)
    return report


def _rebuild_segment(
    segment: int, snapshots: list[BookSnapshot], diffs: list[BookDiff], report: RebuildReport
) -> None:
    report.segments += 1
    syncs = [s for s in snapshots if s.kind == SYNC]
    if len(syncs) != 1:
        report.mismatches.append(Mismatch(segment, -1, f"{len(syncs)} sync snapshots, not one"))
        return
    book = Book.of(syncs[0])
    pending = sorted((s for s in snapshots if s.kind == PERIODIC), key=lambda s: s.last_update_id)
    diffs = sorted(diffs, key=lambda d: d.final_update_id)
    for diff in diffs:
        while pending and pending[0].last_update_id <= book.last_update_id:
            _compare(segment, book, pending.pop(0), report)
        if diff.final_update_id <= book.last_update_id:
            report.diffs_skipped += 1
            continue
        if diff.first_update_id > book.last_update_id + 1:
            what = f"diff {diff.first_update_id}..{diff.final_update_id} does not continue"
            report.mismatches.append(Mismatch(segment, book.last_update_id, what))
            return
        book.apply(diff)
        report.diffs_applied += 1
        report.crossed += book.is_crossed()
    for snapshot in pending:
        _compare(segment, book, snapshot, report)


def _compare(segment: int, book: Book, snapshot: BookSnapshot, report: RebuildReport) -> None:
    found = _differences(book, snapshot)
    if found is None:
        report.snapshots_matched += 1
    else:
        report.mismatches.append(Mismatch(segment, snapshot.last_update_id, found))
