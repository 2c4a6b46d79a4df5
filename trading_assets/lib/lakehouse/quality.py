"""Data-quality measurements on silver trades; the Dagster asset checks report these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

MAX_EXAMPLES = 20


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
    raw_rows: int
    bronze_rows: int
    silver_rows: int
    quarantine_rows: int

    @property
    def balanced(self) -> bool:
        return self.raw_rows == self.bronze_rows == self.silver_rows + self.quarantine_rows


def trade_id_gaps(trade_ids: pl.Series) -> GapReport:
    """Missing ids between the smallest and largest present id (duplicates ignored)."""
    ids = trade_ids.drop_nulls().unique().sort()
    if ids.len() < 2:
        return GapReport(0, 0)
    frame = pl.DataFrame({"id": ids}).with_columns(previous=pl.col("id").shift(1))
    gaps = frame.filter(pl.col("id") - pl.col("previous") > 1)
    missing = int((gaps["id"] - gaps["previous"] - 1).sum())
    ranges = [
        (int(prev) + 1, int(cur) - 1)
        for prev, cur in gaps.head(MAX_EXAMPLES).select("previous", "id").iter_rows()
    ]
    return GapReport(missing_ids=missing, gap_count=gaps.height, ranges=ranges)


def duplicate_trade_ids(trades: pl.DataFrame) -> CountReport:
    """Trade ids occurring more than once (silver must have none)."""
    counts = trades.group_by("trade_id").len().filter(pl.col("len") > 1).sort("trade_id")
    extra = int((counts["len"] - 1).sum()) if counts.height else 0
    examples = [
        {"trade_id": int(tid), "copies": int(n)} for tid, n in counts.head(MAX_EXAMPLES).iter_rows()
    ]
    return CountReport(count=extra, examples=examples)


def time_backwards(trades: pl.DataFrame) -> CountReport:
    """Trades whose event time is earlier than the previous trade's, in trade-id order."""
    ordered = trades.lazy().select("trade_id", "event_time").sort("trade_id")
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


def price_spikes(trades: pl.DataFrame, window: int = 101, threshold: float = 0.05) -> CountReport:
    """Trades priced more than ``threshold`` (relative) away from the centred rolling median.

    A median of ~100 neighbouring trades ignores a single bad print, so the print itself is
    flagged rather than the honest trades around it.
    """
    if trades.is_empty():
        return CountReport(0)
    scored = (
        trades.lazy()
        .select("trade_id", pl.col("price").cast(pl.Float64))
        .sort("trade_id")
        .with_columns(
            median=pl.col("price").rolling_median(window, min_samples=1, center=True),
        )
        .with_columns(deviation=(pl.col("price") / pl.col("median") - 1.0).abs())
        .filter(pl.col("deviation") > threshold)
        .collect()
    )
    examples = [
        {"trade_id": int(tid), "price": p, "median": m, "deviation": round(d, 6)}
        for tid, p, m, d in scored.head(MAX_EXAMPLES).iter_rows()
    ]
    return CountReport(count=scored.height, examples=examples)
