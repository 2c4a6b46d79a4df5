"""Rebuild a landed L2 book from its lines, and hold it to its own snapshots.

The rebuild is the batch twin of the sidecar's live book: within each segment it starts from the
``sync`` snapshot, applies every diff in update-id order (a diff whose ids the book already holds
is skipped, as live skips it; a diff that does not continue the chain breaks the segment), and
compares the book with every ``periodic`` snapshot of the segment, level for level, in exact
integer units of 1e-8. A rebuild that matches every snapshot proves the landed diffs are the
whole story: nothing lost, reordered or changed between the live book and the lakehouse.

It works on integer levels (:class:`LevelDiff`, :class:`LevelSnapshot`): silver holds them so
(:mod:`trading_assets.lib.book.tables`), and the landed lines convert with :func:`levels_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from trading_assets.lib.book.lines import PERIODIC, SYNC, BookDiff, BookSnapshot, PriceLevel
from trading_assets.lib.features.live import units_of

Side = dict[int, int]  # price → quantity, both in 1e-8 units
MAX_EXAMPLES = 5  # update ids of crossed books a report keeps


class LevelDiff(NamedTuple):
    """One diff in integer units: the levels of each side it sets (quantity 0 removes one)."""

    segment: int
    first_update_id: int
    final_update_id: int
    receive_ns: int
    bid_prices: Sequence[int]
    bid_qtys: Sequence[int]
    ask_prices: Sequence[int]
    ask_qtys: Sequence[int]


class LevelSnapshot(NamedTuple):
    """One whole book in integer units, best level first on each side (``lost_ns``: see
    :class:`~trading_assets.lib.book.lines.BookSnapshot`)."""

    segment: int
    kind: str
    last_update_id: int
    taken_ns: int
    bid_prices: Sequence[int]
    bid_qtys: Sequence[int]
    ask_prices: Sequence[int]
    ask_qtys: Sequence[int]
    lost_ns: int | None = None


def _units(levels: Sequence[PriceLevel]) -> tuple[list[int], list[int]]:
    return units_of([p for p, _ in levels]), units_of([q for _, q in levels])


def levels_of(line: BookDiff | BookSnapshot) -> LevelDiff | LevelSnapshot:
    """A landed line in integer units."""
    (bid_prices, bid_qtys), (ask_prices, ask_qtys) = _units(line.bids), _units(line.asks)
    if isinstance(line, BookDiff):
        return LevelDiff(line.segment, line.first_update_id, line.final_update_id,
                         line.receive_ns, bid_prices, bid_qtys, ask_prices, ask_qtys)  # fmt: skip
    return LevelSnapshot(line.segment, line.kind, line.last_update_id, line.taken_ns,
                         bid_prices, bid_qtys, ask_prices, ask_qtys, line.lost_ns)  # fmt: skip


def _set(side: Side, prices: Sequence[int], qtys: Sequence[int], best: int | None, sign: int
         ) -> int | None:  # fmt: skip
    """Apply levels to one side; its new best price (``sign`` 1: bids, the highest; -1: asks)."""
    lost_best = False
    for price, qty in zip(prices, qtys, strict=True):
        if qty:
            side[price] = qty
            if best is None or price * sign > best * sign:
                best = price
        elif side.pop(price, None) is not None and price == best:
            # Removing a level the book does not hold is normal (beyond the snapshot's depth).
            lost_best = True
    if lost_best:
        return (max if sign > 0 else min)(side, default=None)
    return best


@dataclass
class Book:
    """One instrument's book in integer units as of ``last_update_id``, its best prices kept as
    it changes."""

    last_update_id: int
    bids: Side = field(default_factory=dict)
    asks: Side = field(default_factory=dict)
    best_bid: int | None = None
    best_ask: int | None = None

    @classmethod
    def of(cls, snapshot: LevelSnapshot | BookSnapshot) -> Book:
        if isinstance(snapshot, BookSnapshot):
            levels = levels_of(snapshot)
            assert isinstance(levels, LevelSnapshot)
            snapshot = levels
        book = cls(snapshot.last_update_id)
        book.best_bid = _set(book.bids, snapshot.bid_prices, snapshot.bid_qtys, None, 1)
        book.best_ask = _set(book.asks, snapshot.ask_prices, snapshot.ask_qtys, None, -1)
        return book

    def apply(self, diff: LevelDiff | BookDiff) -> None:
        """Apply one diff that continues the book (the caller checks the chain)."""
        if isinstance(diff, BookDiff):
            levels = levels_of(diff)
            assert isinstance(levels, LevelDiff)
            diff = levels
        self.best_bid = _set(self.bids, diff.bid_prices, diff.bid_qtys, self.best_bid, 1)
        self.best_ask = _set(self.asks, diff.ask_prices, diff.ask_qtys, self.best_ask, -1)
        self.last_update_id = diff.final_update_id

    def best(self) -> tuple[int | None, int | None]:
        """The best bid and the best ask price (1e-8 units; None for an empty side)."""
        return self.best_bid, self.best_ask

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid >= ask


@dataclass(frozen=True)
class Mismatch:
    """Where a rebuild and the landed lines disagree (one line of a report)."""

    segment: int
    last_update_id: int
    what: str


@dataclass
class RebuildReport:
    """What a rebuild found: per segment, the diffs applied and the snapshots matched; where a
    segment's chain broke (``breaks``), where the book differed from a snapshot
    (``mismatches``), and after how many diffs it was crossed (the first few update ids in
    ``crossed_at``)."""

    segments: int = 0
    diffs_applied: int = 0
    diffs_skipped: int = 0
    snapshots_matched: int = 0
    crossed: int = 0
    crossed_at: list[int] = field(default_factory=list)
    breaks: list[Mismatch] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.mismatches and not self.crossed


def _side_of(prices: Sequence[int], qtys: Sequence[int]) -> Side:
    return {p: q for p, q in zip(prices, qtys, strict=True) if q}


def _differences(book: Book, snapshot: LevelSnapshot) -> str | None:
    if book.last_update_id != snapshot.last_update_id:
        return f"the book is at update {book.last_update_id}"
    for name, side, landed in (
        ("bid", book.bids, _side_of(snapshot.bid_prices, snapshot.bid_qtys)),
        ("ask", book.asks, _side_of(snapshot.ask_prices, snapshot.ask_qtys)),
    ):
        if side != landed:
            extra = sorted(set(side.items()) - set(landed.items()))[:3]
            missing = sorted(set(landed.items()) - set(side.items()))[:3]
            return f"{name} levels differ: rebuilt has {extra} more, lacks {missing}"
    return None


def _as_levels(lines: Iterable[BookDiff | BookSnapshot | LevelDiff | LevelSnapshot]) -> list:
    return [levels_of(x) if isinstance(x, BookDiff | BookSnapshot) else x for x in lines]


def rebuild(
    diffs: Sequence[LevelDiff | BookDiff], snapshots: Sequence[LevelSnapshot | BookSnapshot]
) -> RebuildReport:
    """Rebuild one instrument's book from its landed lines and check it (see the module)."""
    report = RebuildReport()
    by_segment: dict[int, tuple[list[LevelSnapshot], list[LevelDiff]]] = {}
    for snapshot in _as_levels(snapshots):
        by_segment.setdefault(snapshot.segment, ([], []))[0].append(snapshot)
    for diff in _as_levels(diffs):
        by_segment.setdefault(diff.segment, ([], []))[1].append(diff)
    for segment in sorted(by_segment):
        segment_snapshots, segment_diffs = by_segment[segment]
        _rebuild_segment(segment, segment_snapshots, segment_diffs, report)
    return report


def _rebuild_segment(
    segment: int, snapshots: list[LevelSnapshot], diffs: list[LevelDiff], report: RebuildReport
) -> None:
    report.segments += 1
    syncs = [s for s in snapshots if s.kind == SYNC]
    if len(syncs) != 1:
        report.breaks.append(Mismatch(segment, -1, f"{len(syncs)} sync snapshots, not one"))
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
            report.breaks.append(Mismatch(segment, book.last_update_id, what))
            return
        book.apply(diff)
        report.diffs_applied += 1
        if book.is_crossed():
            report.crossed += 1
            if len(report.crossed_at) < MAX_EXAMPLES:
                report.crossed_at.append(diff.final_update_id)
    for snapshot in pending:
        _compare(segment, book, snapshot, report)


def _compare(segment: int, book: Book, snapshot: LevelSnapshot, report: RebuildReport) -> None:
    found = _differences(book, snapshot)
    if found is None:
        report.snapshots_matched += 1
    else:
        report.mismatches.append(Mismatch(segment, snapshot.last_update_id, found))
