"""The ``depth`` group: features of one instrument's L2 book, per second, from its landed book
lines (:mod:`trading_assets.lib.book.lines`), in batch from silver and live from the lines the
sidecar's recorder lands, through this one class, so both agree to the last bit.

A row's ``event_timestamp`` is the end ``E`` of a second; it reads the book as of every line
received at or before ``E`` (the sidecar's receive time: the time it could have acted). Each
segment stands alone: its sync snapshot starts the book and the windows afresh, a gap ends it
(when the sidecar saw it, the sync snapshot's ``lost_ns``), and a row is *covered* while a
segment holds the book. An uncovered row has every feature null. A new UTC day starts a segment
too, so the windowed feature is null for its first ``w`` seconds of each day (about 1 % of a
day's rows at 900 s), and a day's rows need only that day's lines.

Point features at ``E`` (prices in integer 1e-8 units, bid ``b``, ask ``a``, sizes ``q``):

* ``depth_covered``: 1 when captured book data covers the second, else 0 (the one feature of an
  uncovered row; a training row without any depth row has it null: not covered either);
* ``depth_imb_{k}`` (k = 5, 10, 20) = (Σ bid sizes − Σ ask sizes) / (Σ both) over the top k
  levels of each side;
* ``l2_microprice_dev`` = (microprice − mid) / mid = (a − b) · imb₁ / (a + b), imb₁ the top
  level's size imbalance;
* ``l2_spread_bps`` = 2e4 · (a − b) / (a + b);
* ``book_slope``: per side, ln(Q₂₀ / Q₅) / ln(D₂₀ / D₅), with Qₖ the cumulative size of the top
  k levels and Dₖ the k-th level's distance from the mid; the mean of the two sides (null with
  fewer than 20 levels a side): how fast depth grows away from the mid, as an elasticity.

Windowed (suffix ``_{w}s``): ``ofi`` = order-flow imbalance (Cont, Kukanov and Stoikov 2014):
per diff, ``e = 1[b′ ≥ b]·q_b′ − 1[b′ ≤ b]·q_b − 1[a′ ≤ a]·q_a′ + 1[a′ ≥ a]·q_a`` from the best
levels before and after it, summed over the window's ``n`` seconds and divided by the mean top
depth (q_b + q_a) / 2 at their ends: 2n · Σe / Σ(q_b + q_a). Null until the segment holds ``n``
whole seconds. Sizes are integers, so window sums are exact and the one division is the only
rounding. Every feature is a ratio of prices or of sizes (scale-free).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence

from trading_assets.lib.book.lines import SYNC
from trading_assets.lib.book.rebuild import Book, LevelDiff, LevelSnapshot
from trading_assets.lib.features.definitions import (
    DEFAULT_CONFIG,
    DEPTH,
    SPREAD_BPS_FACTOR,
    FeatureConfig,
    feature_names,
)
from trading_assets.lib.features.incremental import FeatureRow

IMBALANCE_LEVELS = (5, 10, 20)
SLOPE_LEVELS = (5, 20)
NS_PER_S = 1_000_000_000
COVERED = "depth_covered"
"""The feature that says a row's second was covered by captured book data."""


def depth_feature_names(config: FeatureConfig = DEFAULT_CONFIG) -> list[str]:
    """The group's feature names, in order."""
    return feature_names(config, (DEPTH,))


def _imbalance(bids: Sequence[int], asks: Sequence[int]) -> float | None:
    total = sum(bids) + sum(asks)
    return (sum(bids) - sum(asks)) / total if total else None


def _slope(prices: Sequence[int], sizes: Sequence[int], mid2: int) -> float | None:
    """ln(Q20/Q5) / ln(D20/D5) of one side (``mid2`` = twice the mid)."""
    low, high = SLOPE_LEVELS
    if len(prices) < high:
        return None
    near, far = abs(2 * prices[low - 1] - mid2), abs(2 * prices[high - 1] - mid2)
    if not near or far <= near:
        return None
    return math.log(sum(sizes[:high]) / sum(sizes[:low])) / math.log(far / near)


class _Window:
    """Exact integer sums of the last ``n`` seconds' order flow and top depth."""

    __slots__ = ("depth", "flow", "n", "seconds")

    def __init__(self, n: int) -> None:
        self.n = n
        self.seconds: deque[tuple[int, int]] = deque()
        self.flow = self.depth = 0

    def push(self, flow: int, depth: int) -> float | None:
        """Add a second; 2n · Σe / Σdepth once ``n`` seconds are held (None before, or at no
        depth)."""
        self.seconds.append((flow, depth))
        self.flow += flow
        self.depth += depth
        if len(self.seconds) > self.n:
            old_flow, old_depth = self.seconds.popleft()
            self.flow -= old_flow
            self.depth -= old_depth
        if len(self.seconds) < self.n or not self.depth:
            return None
        return 2 * self.n * self.flow / self.depth


class DepthFeatures:
    """One instrument's ``depth`` rows from its book lines, fed in receive-time order (see the
    module). ``on_line`` and ``lose`` return the rows of the seconds they closed; ``close_until``
    closes seconds by the clock (live)."""

    def __init__(self, instrument: str, config: FeatureConfig = DEFAULT_CONFIG) -> None:
        self.instrument = instrument
        self.names = depth_feature_names(config)
        self.windows_s = tuple(config.windows_s)
        self.book: Book | None = None  # None: not covered
        self.next_end_ns: int | None = None  # the end of the first second not yet emitted
        self._flow = 0  # Σe of the open second
        self._windows = [_Window(w) for w in self.windows_s]
        # Each side's prices in ascending order, kept as levels come and go: the top levels
        # are a slice, where a selection over the whole side (thousands of levels after a
        # day's moves) cost most of a day's computation.
        self._bid_prices: list[int] = []
        self._ask_prices: list[int] = []
        self._last_line_ns = 0  # receive time of the newest line

    def on_line(self, line: LevelDiff | LevelSnapshot) -> list[FeatureRow]:
        """Apply one line (its receive time: a diff's ``receive_ns``, a snapshot's
        ``taken_ns``); the rows of the seconds that ended before it."""
        if isinstance(line, LevelDiff):
            self._last_line_ns = line.receive_ns
            rows = self.close_until(line.receive_ns - 1)
            book = self.book
            if book is not None:  # (a diff outside a segment is the landing's to explain)
                bid, ask = book.best_bid, book.best_ask
                bid_qty = 0 if bid is None else book.bids[bid]
                ask_qty = 0 if ask is None else book.asks[ask]
                _keep_sorted(self._bid_prices, line.bid_prices, line.bid_qtys)
                _keep_sorted(self._ask_prices, line.ask_prices, line.ask_qtys)
                book.apply(line)
                self._flow += _flow(bid, bid_qty, ask, ask_qty, book)
            return rows
        if line.kind != SYNC:  # a periodic snapshot changes nothing
            self._last_line_ns = line.taken_ns
            return self.close_until(line.taken_ns - 1)
        rows = []
        if self.book is not None and line.lost_ns is not None:
            rows += self.lose(line.lost_ns)
        elif self.book is not None and line.last_update_id != self.book.last_update_id:
            # A new run's first segment: the run before ended at an unknown time after its
            # last line (stopped, or killed), so nothing after that line was covered.
            rows += self.lose(self._last_line_ns + 1)
        self._last_line_ns = line.taken_ns
        rows += self.close_until(line.taken_ns - 1)
        self.book = Book.of(line)
        self._bid_prices, self._ask_prices = sorted(self.book.bids), sorted(self.book.asks)
        self._flow = 0
        self._windows = [_Window(w) for w in self.windows_s]
        if self.next_end_ns is None:
            self.next_end_ns = (line.taken_ns // NS_PER_S + 1) * NS_PER_S
        return rows

    def lose(self, at_ns: int) -> list[FeatureRow]:
        """The segment ended at ``at_ns`` (a gap, or landing paused): later seconds are not
        covered until the next sync snapshot."""
        rows = self.close_until(at_ns - 1)
        self.book = None
        return rows

    def close_until(self, until_ns: int) -> list[FeatureRow]:
        """The rows of every second ending at or before ``until_ns`` not yet emitted."""
        rows: list[FeatureRow] = []
        end = self.next_end_ns
        if end is None:
            return rows
        while end <= until_ns:
            rows.append(self._row(end))
            end += NS_PER_S
        self.next_end_ns = end
        return rows

    def _row(self, end_ns: int) -> FeatureRow:
        values: dict[str, float | None] = dict.fromkeys(self.names)
        book = self.book
        values[COVERED] = float(book is not None)
        if book is not None:
            self._point(book, values)
            flow, self._flow = self._flow, 0
            bid, ask = book.best_bid, book.best_ask
            depth = (0 if bid is None else book.bids[bid]) + (0 if ask is None else book.asks[ask])
            for window in self._windows:
                values[f"ofi_{window.n}s"] = window.push(flow, depth)
        return FeatureRow(self.instrument, end_ns // 1000, values)

    def _point(self, book: Book, values: dict[str, float | None]) -> None:
        """The point features of the book as it stands."""
        bid, ask = book.best_bid, book.best_ask
        if bid is None or ask is None:
            return
        top = max(IMBALANCE_LEVELS)
        bid_prices = self._bid_prices[: -top - 1 : -1]
        ask_prices = self._ask_prices[:top]
        bid_sizes = [book.bids[p] for p in bid_prices]
        ask_sizes = [book.asks[p] for p in ask_prices]
        for k in IMBALANCE_LEVELS:
            values[f"depth_imb_{k}"] = _imbalance(bid_sizes[:k], ask_sizes[:k])
        top_imbalance = _imbalance(bid_sizes[:1], ask_sizes[:1])
        if top_imbalance is not None:
            values["l2_microprice_dev"] = (ask - bid) * top_imbalance / (ask + bid)
        values["l2_spread_bps"] = SPREAD_BPS_FACTOR * (ask - bid) / (ask + bid)
        bid_slope = _slope(bid_prices, bid_sizes, bid + ask)
        ask_slope = _slope(ask_prices, ask_sizes, bid + ask)
        if bid_slope is not None and ask_slope is not None:
            values["book_slope"] = (bid_slope + ask_slope) / 2


def _keep_sorted(prices: list[int], changed: Sequence[int], sizes: Sequence[int]) -> None:
    """Keep ``prices`` (a side's, ascending) the side's levels once ``changed`` are set to
    ``sizes`` (size 0 removes a level)."""
    for price, size in zip(changed, sizes, strict=True):
        at = bisect.bisect_left(prices, price)
        held = at < len(prices) and prices[at] == price
        if size and not held:
            prices.insert(at, price)
        elif not size and held:
            del prices[at]


def _flow(bid: int | None, bid_qty: int, ask: int | None, ask_qty: int, book: Book) -> int:
    """One diff's order-flow imbalance e (see the module) from the best levels before it."""
    new_bid, new_ask = book.best_bid, book.best_ask
    if bid is None or ask is None or new_bid is None or new_ask is None:
        return 0
    new_bid_qty, new_ask_qty = book.bids[new_bid], book.asks[new_ask]
    flow = (new_bid_qty if new_bid >= bid else 0) - (bid_qty if new_bid <= bid else 0)
    flow += (ask_qty if new_ask >= ask else 0) - (new_ask_qty if new_ask <= ask else 0)
    return flow


def _receive_order(line: LevelDiff | LevelSnapshot) -> tuple[int, int]:
    """Lines in the order the sidecar made them: by receive time; at one time a sync snapshot
    (taken before the diff that arrived with it) before a diff before a periodic snapshot
    (taken after it)."""
    if isinstance(line, LevelDiff):
        return line.receive_ns, 1
    return line.taken_ns, 0 if line.kind == SYNC else 2


def depth_rows(
    instrument: str,
    diffs: Sequence[LevelDiff],
    snapshots: Sequence[LevelSnapshot],
    config: FeatureConfig = DEFAULT_CONFIG,
) -> list[FeatureRow]:
    """Batch: the rows of every second from the first line's to the last line's (a day's
    lines give that day's rows), as the live path emits them."""
    features = DepthFeatures(instrument, config)
    rows: list[FeatureRow] = []
    lines = sorted([*diffs, *snapshots], key=_receive_order)
    for line in lines:
        rows += features.on_line(line)
    if lines:
        rows += features.close_until(_receive_order(lines[-1])[0])
    return rows
