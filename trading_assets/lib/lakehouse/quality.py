"""Data-quality measurements on silver trades; the Dagster asset checks report these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

MAX_EXAMPLES = 20
SPIKE_CHUNK_ROWS = 500_000


@dataclass(frozen=True)
class GapReport:
    missing_ids: int
    gap_count: int
    ranges: list[tuple[int, int]] = field(default_factory=list)  # inclusive missing id ranges


@dataclass(frozen=True)
class CountReport:
    count: int
    examples: Sequence[Mapping[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class Reconciliation:
    raw_rows: int | None
    """The bulk file's rows; None for a venue without daily files (bronze is the landed trades)."""
    bronze_rows: int
    silver_rows: int
    quarantine_rows: int

    @property
    def balanced(self) -> bool:
        raw = self.bronze_rows if self.raw_rows is None else self.raw_rows
        return raw == self.bronze_rows == self.silver_rows + self.quarantine_rows


def trade_id_gaps(trade_ids: pl.Series) -> GapReport:
    """Missing ids between the smallest and largest present id (duplicates ignored)."""
    ids = _ascending(trade_ids.drop_nulls())
    if ids.len() < 2:
        return GapReport(0, 0)
    # Neighbours in sorted order (a copy of the day's ids, no hash table): a step above one is
    # a gap, a step of zero a duplicate, which is no gap.
    previous, current = ids.slice(0, ids.len() - 1), ids.slice(1)
    gap = (current - previous) > 1
    before, after = previous.filter(gap), current.filter(gap)
    missing = int((after - before - 1).sum())
    ranges = [
        (int(prev) + 1, int(cur) - 1)
        for prev, cur in zip(
            before.head(MAX_EXAMPLES).to_list(), after.head(MAX_EXAMPLES).to_list(), strict=True
        )
    ]
    return GapReport(missing_ids=missing, gap_count=before.len(), ranges=ranges)


def duplicate_trade_ids(trades: pl.DataFrame) -> CountReport:
    """Trade ids occurring more than once (silver must have none)."""
    ids = _ascending(trades["trade_id"].drop_nulls())
    if ids.len() < 2:
        return CountReport(0)
    later = ids.slice(1)
    repeats = later.filter(later == ids.slice(0, ids.len() - 1))  # each extra copy once
    if repeats.is_empty():
        return CountReport(0)
    counts = repeats.alias("trade_id").value_counts(name="extra").sort("trade_id")
    examples = [
        {"trade_id": int(tid), "copies": int(extra) + 1}
        for tid, extra in counts.head(MAX_EXAMPLES).iter_rows()
    ]
    return CountReport(count=repeats.len(), examples=examples)


def _ascending(ids: pl.Series) -> pl.Series:
    """Silver is written in trade-id order, so a day's ids usually need no sorting at all."""
    return ids if ids.is_sorted() else ids.sort()


def time_backwards(trades: pl.DataFrame) -> CountReport:
    """Trades whose event time is earlier than the previous trade's, in trade-id order."""
    ordered = trades.lazy().select("trade_id", "event_time")
    if not trades["trade_id"].is_sorted():
        ordered = ordered.sort("trade_id")
    backwards = (
        ordered.with_columns(previous_time=pl.col("event_time").shift(1))
        .filter(pl.col("event_time") < pl.col("previous_time"))
        .collect()
    )
    examples = [
        {"trade_id": int(tid), "event_time": str(t), "previous_time": str(p)}
        for tid, t, p in backwards.head(MAX_EXAMPLES).iter_rows()
    ]
    return CountReport(count=backwards.height, examples=examples)


def price_spikes(
    trades: pl.DataFrame,
    window: int = 101,
    threshold: float = 0.05,
    chunk_rows: int = SPIKE_CHUNK_ROWS,
) -> CountReport:
    """Trades priced more than ``threshold`` (relative) away from the centred rolling median.

    A median of ~100 neighbouring trades ignores a single bad print, so the print itself is
    flagged rather than the honest trades around it. The medians are computed ``chunk_rows``
    trades at a time, each piece with ``window`` neighbours either side, so every window is
    whole and the result is the day's, without the day's medians and deviations in memory.
    """
    if trades.is_empty():
        return CountReport(0)
    ordered = trades.select("trade_id", pl.col("price").cast(pl.Float64))
    if not ordered["trade_id"].is_sorted():
        ordered = ordered.sort("trade_id")
    pieces = []
    for start in range(0, ordered.height, chunk_rows):
        low = max(0, start - window)
        piece = ordered.slice(low, min(ordered.height, start + chunk_rows + window) - low)
        scored = (
            piece.with_columns(
                median=pl.col("price").rolling_median(window, min_samples=1, center=True)
            )
            .slice(start - low, chunk_rows)
            .with_columns(deviation=(pl.col("price") / pl.col("median") - 1.0).abs())
            .filter(pl.col("deviation") > threshold)
        )
        pieces.append(scored)
    spikes = pl.concat(pieces)
    examples = [
        {"trade_id": int(tid), "price": p, "median": m, "deviation": round(d, 6)}
        for tid, p, m, d in spikes.head(MAX_EXAMPLES).iter_rows()
    ]
    return CountReport(count=spikes.height, examples=examples)
