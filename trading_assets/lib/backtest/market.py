"""What the market looked like at any moment of a replay, from the best data there is.

A backtest asks, in time order, for the mid price (to mark and size) and for a fill (an order
reaching the venue). Each instrument's :class:`MarketTape` answers from, in order:

* the captured L2 book (:class:`BookTape`), rebuilt from silver's diffs and snapshots, where a
  segment covers the moment: from its sync snapshot to the loss that ended it (the next
  segment's ``lost_ns``), or to the next segment when it was cut with nothing lost (midnight, a
  landing pause), or to its last line when nothing follows;
* book tickers (:class:`TickerTape`), when one is at most ``max_age_ns`` old;
* 1 s bars' closes (:class:`BarTape`), likewise, paying half an assumed spread.

Queries must not go back in time: each tape moves forward only, so a day is replayed once.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trading_assets.lib.backtest.fills import (
    UNITS,
    Fill,
    fill_on_bar,
    fill_on_book,
    fill_on_ticker,
)
from trading_assets.lib.book.lines import SYNC
from trading_assets.lib.book.rebuild import Book, LevelDiff, LevelSnapshot

NS = 1_000_000_000
DEFAULT_MAX_AGE_NS = 5 * NS


@dataclass(frozen=True)
class _Segment:
    start_ns: int
    end_ns: int
    sync: LevelSnapshot
    diffs: list[LevelDiff]


def _segments(diffs: Sequence[LevelDiff], snapshots: Sequence[LevelSnapshot]) -> list[_Segment]:
    syncs = sorted((s for s in snapshots if s.kind == SYNC), key=lambda s: s.taken_ns)
    by_segment: dict[int, list[LevelDiff]] = {s.segment: [] for s in syncs}
    seen_ns = {s.segment: s.taken_ns for s in syncs}  # the newest line of each segment
    for diff in diffs:
        if diff.segment in by_segment:
            by_segment[diff.segment].append(diff)
            seen_ns[diff.segment] = max(seen_ns[diff.segment], diff.receive_ns)
    for snapshot in snapshots:
        if snapshot.segment in seen_ns:
            seen_ns[snapshot.segment] = max(seen_ns[snapshot.segment], snapshot.taken_ns)
    segments = []
    for number, sync in enumerate(syncs):
        own = sorted(by_segment[sync.segment], key=lambda d: d.final_update_id)
        last_ns = seen_ns[sync.segment]
        following = syncs[number + 1] if number + 1 < len(syncs) else None
        if following is None:
            end_ns = last_ns
        elif following.lost_ns is not None:
            end_ns = max(following.lost_ns, last_ns)
        elif following.last_update_id == (own[-1].final_update_id if own else sync.last_update_id):
            end_ns = following.taken_ns  # cut with nothing lost: the book held until then
        else:
            end_ns = last_ns  # another run's book: this one is known until its last line only
        segments.append(_Segment(sync.taken_ns, end_ns, sync, own))
    return segments


class BookTape:
    """One instrument's rebuilt L2 book as of any (non-decreasing) time."""

    def __init__(self, diffs: Sequence[LevelDiff], snapshots: Sequence[LevelSnapshot]) -> None:
        self._segments = _segments(diffs, snapshots)
        self.rewind()

    def rewind(self) -> None:
        """Back to before the first segment, for another replay of the same lines."""
        self._index = -1
        self._book: Book | None = None
        self._next_diff = 0
        self._last_ns = -1

    @property
    def segments(self) -> int:
        """How many segments the tape holds."""
        return len(self._segments)

    def at(self, now_ns: int) -> Book | None:
        """The book as the lines received by ``now_ns`` left it; None where no segment covers
        ``now_ns``. The book returned is the tape's own: read it, do not keep it."""
        if now_ns < self._last_ns:
            raise ValueError(f"the book tape moves forward only: {now_ns} < {self._last_ns}")
        self._last_ns = now_ns
        segments = self._segments
        while self._index + 1 < len(segments) and segments[self._index + 1].start_ns <= now_ns:
            self._index += 1
            segment = segments[self._index]
            self._book, self._next_diff = Book.of(segment.sync), 0
        if self._index < 0 or self._book is None:
            return None
        segment = segments[self._index]
        if now_ns > segment.end_ns:
            return None
        diffs, book = segment.diffs, self._book
        while self._next_diff < len(diffs) and diffs[self._next_diff].receive_ns <= now_ns:
            diff = diffs[self._next_diff]
            if diff.final_update_id > book.last_update_id:
                book.apply(diff)
            self._next_diff += 1
        return book


@dataclass(frozen=True)
class TickerTape:
    """Book tickers of one instrument: receive times (ns, sorted) and the touch (quote, base)."""

    time_ns: npt.NDArray[np.int64]
    bid: npt.NDArray[np.float64]
    bid_size: npt.NDArray[np.float64]
    ask: npt.NDArray[np.float64]
    ask_size: npt.NDArray[np.float64]

    def latest(self, now_ns: int, max_age_ns: int) -> int | None:
        """Index of the newest ticker at or before ``now_ns``, if at most ``max_age_ns`` old."""
        at = int(np.searchsorted(self.time_ns, now_ns, side="right")) - 1
        if at < 0 or now_ns - int(self.time_ns[at]) > max_age_ns:
            return None
        return at


@dataclass(frozen=True)
class BarTape:
    """1 s bars of one instrument: each bar's end time (ns, sorted) and its close."""

    end_ns: Sequence[int]
    close: Sequence[float]

    def latest(self, now_ns: int, max_age_ns: int) -> float | None:
        """The close of the newest bar ended by ``now_ns``, if at most ``max_age_ns`` old."""
        at = bisect.bisect_right(self.end_ns, now_ns) - 1
        if at < 0 or now_ns - self.end_ns[at] > max_age_ns:
            return None
        return self.close[at]


@dataclass
class MarketTape:
    """One instrument's market for a replay: the book, tickers and bars there are (any may be
    None), the spread assumed over a bar's close, and how old a ticker or bar may be."""

    book: BookTape | None = None
    tickers: TickerTape | None = None
    bars: BarTape | None = None
    bar_spread_bps: float = 1.0
    max_age_ns: int = DEFAULT_MAX_AGE_NS

    def rewind(self) -> None:
        """Back to the start, for another replay (the book tape is the only one with a state)."""
        if self.book is not None:
            self.book.rewind()

    def mid(self, now_ns: int) -> float | None:
        """The mid price at ``now_ns`` from the best data (a bar's close last); None: no data."""
        book = self.book.at(now_ns) if self.book is not None else None
        if book is not None and book.best_bid is not None and book.best_ask is not None:
            return (book.best_bid + book.best_ask) * UNITS / 2
        if self.tickers is not None:
            at = self.tickers.latest(now_ns, self.max_age_ns)
            if at is not None:
                return float(self.tickers.bid[at] + self.tickers.ask[at]) / 2
        if self.bars is not None:
            return self.bars.latest(now_ns, self.max_age_ns)
        return None

    def fill(
        self, now_ns: int, notional: float, fee_bp: float, quantity: float | None = None
    ) -> Fill | None:
        """``notional`` (signed quote), or ``quantity`` (signed base) when given, at market at
        ``now_ns``: on the book where one covers the moment, else at a ticker's touch, else at a
        bar's close; None with no data at all."""
        book = self.book.at(now_ns) if self.book is not None else None
        if book is not None:
            filled = fill_on_book(book, notional, fee_bp, quantity)
            if filled is not None:
                return filled
        if self.tickers is not None:
            at = self.tickers.latest(now_ns, self.max_age_ns)
            if at is not None:
                t = self.tickers
                touch = (float(t.bid[at]), float(t.bid_size[at]), float(t.ask[at]),
                         float(t.ask_size[at]))  # fmt: skip
                return fill_on_ticker(*touch, notional, fee_bp, quantity)
        if self.bars is not None:
            close = self.bars.latest(now_ns, self.max_age_ns)
            if close is not None:
                return fill_on_bar(close, notional, self.bar_spread_bps, fee_bp, quantity)
        return None
