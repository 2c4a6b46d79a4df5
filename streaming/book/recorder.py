"""One instrument's L2 book as the sidecar keeps it, and the lines it lands for history.

The recorder feeds every depth update to the venue's book keeper (Binance's diff-depth procedure
with a REST snapshot: :class:`streaming.venues.binance.book.OrderBook`) and turns what the keeper
did into landed lines (:mod:`trading_assets.lib.book.lines`):

* once the keeper is synced (a snapshot loaded and bridged), a ``sync`` snapshot of the whole book
  starts a segment;
* every diff the keeper then applies is landed as it was applied, in the same segment;
* every ``snapshot_every_ns`` of receive time, a ``periodic`` snapshot of the whole book;
* a broken diff chain ends the segment: the keeper resets, :attr:`needs_snapshot` asks the caller
  for a new REST snapshot, and the next segment's ``sync`` snapshot says what the gap was;
* while landing is paused (:meth:`BookRecorder.pause`) the book is kept but nothing is landed;
  the segment ends, and the first update after :meth:`BookRecorder.resume` starts the next.

Nothing is landed while the book is not synced: a segment holds only what a rebuild can replay.
"""

from __future__ import annotations

from streaming.records import DEFAULT_VENUE, SPOT, DepthSnapshot, DepthUpdate, MarketType
from streaming.venues.binance.book import OrderBook, OrderBookGapError
from trading_assets.lib.book.lines import PERIODIC, SYNC, BookDiff, BookSnapshot, SnapshotKind

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
BookLine = BookDiff | BookSnapshot


class BookRecorder:
    """One instrument's book and its landed lines (see the module).

    A segment's id is the receive time (ns) of its sync snapshot, kept increasing, so segments of
    different runs never share one. A new UTC day (of receive time) starts a new segment, with
    nothing lost (its sync snapshot's ``gap`` is None), so each day's lines rebuild on their own.
    """

    def __init__(self, symbol: str, snapshot_every_s: float = 60.0) -> None:
        self.book = OrderBook(symbol)
        self.symbol = symbol
        self.snapshot_every_ns = round(snapshot_every_s * NS_PER_S)
        self.segment = 0  # the segment being landed (or the last one); 0 before the first
        self._open = False  # whether a segment is being landed
        self._day = -1  # the UTC day of the open segment
        self._gap: str | None = None  # why the previous segment ended, for the next sync
        self._lost_ns: int | None = None  # and when (receive time of what showed it)
        self._paused: str | None = None  # why lines are not wanted now (landing paused)
        self._next_snapshot_ns: int | None = None
        self.needs_snapshot = True  # the keeper waits for a REST snapshot
        self._venue: str = DEFAULT_VENUE  # the records', once one is seen
        self._market: MarketType = SPOT

    @property
    def recording(self) -> bool:
        """Whether a segment is being landed."""
        return self._open

    def on_update(self, update: DepthUpdate) -> list[BookLine]:
        """Feed one depth update; the lines it lands (the diff, and a snapshot when one is due,
        the update completed a sync, or it starts a new day)."""
        self._venue, self._market = update.venue, update.market
        lines: list[BookLine] = []
        if self._open and update.receive_ns // NS_PER_DAY != self._day:
            lines += self._start(update.receive_ns)  # the book before this update, new segment
        try:
            applied = self.book.apply_update(update)
        except OrderBookGapError as gap:
            self._lost(str(gap), update.receive_ns)
            return lines
        if not applied or not self.book.synced or self._paused is not None:
            return lines
        if not self._open:  # synced (a snapshot bridged, or landing resumed): this one included
            return self._start(update.receive_ns)
        lines.append(_diff(update, self.segment))
        lines += self._due(update.receive_ns)
        return lines

    def on_snapshot(self, snapshot: DepthSnapshot) -> list[BookLine]:
        """Load a REST snapshot (replaying the buffered updates); the sync snapshot it starts a
        segment with, once the book is synced."""
        self.needs_snapshot = False
        try:
            self.book.apply_snapshot(snapshot)
        except OrderBookGapError as gap:
            self._lost(str(gap), snapshot.receive_ns)
            return []
        if self.book.synced and self._paused is None:
            return self._start(snapshot.receive_ns)
        return []

    def lose(self, why: str, now_ns: int) -> None:
        """End the segment from outside and drop the book (a reconnect: updates may have been
        missed); a new REST snapshot is needed."""
        self.book.reset()
        self._lost(why, now_ns)

    def pause(self, why: str, now_ns: int) -> None:
        """Stop landing lines (the landing paused): the segment ends, the book is kept."""
        if self._paused is None:
            self._end(why, now_ns)
            self._paused = why

    def resume(self) -> None:
        """Land lines again: the next update the synced book applies starts a new segment."""
        self._paused = None

    def _lost(self, why: str, now_ns: int) -> None:
        self._end(why, now_ns)
        self.needs_snapshot = True

    def _end(self, why: str, now_ns: int) -> None:
        if self._open:
            self._gap, self._lost_ns = why, now_ns
        elif self._gap is not None:  # a second reason before the next segment started
            self._gap = f"{self._gap}; then {why}"
        self._open = False

    def _start(self, now_ns: int) -> list[BookLine]:
        self.segment = max(now_ns, self.segment + 1)
        self._open = True
        self._day = now_ns // NS_PER_DAY
        gap, lost_ns, self._gap, self._lost_ns = self._gap, self._lost_ns, None, None
        self._next_snapshot_ns = now_ns + self.snapshot_every_ns
        return [self._snapshot(SYNC, now_ns, gap, lost_ns)]

    def _due(self, now_ns: int) -> list[BookLine]:
        due = self._next_snapshot_ns
        if due is None or now_ns < due:
            return []
        self._next_snapshot_ns = now_ns + self.snapshot_every_ns
        return [self._snapshot(PERIODIC, now_ns)]

    def _snapshot(
        self, kind: SnapshotKind, now_ns: int, gap: str | None = None, lost_ns: int | None = None
    ) -> BookSnapshot:
        book = self.book
        assert book.last_update_id is not None
        return BookSnapshot(
            self.symbol, self.segment, kind, book.last_update_id, tuple(book.bids()),
            tuple(book.asks()), now_ns, gap, self._venue, self._market, lost_ns,
        )  # fmt: skip


def _diff(update: DepthUpdate, segment: int) -> BookDiff:
    return BookDiff(
        update.symbol, segment, update.first_update_id, update.final_update_id,
        update.bids, update.asks, update.event_ns, update.receive_ns, update.venue, update.market,
    )  # fmt: skip
