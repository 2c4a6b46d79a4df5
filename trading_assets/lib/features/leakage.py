"""Look-ahead check: does any column at time t change when the input is cut off at t?

For each sampled timestamp ``t`` the computation is rerun on the input truncated to data with
time ≤ t (bars that ended by t, book tickers at or before t) and its row at ``t`` is compared
with the row at ``t`` from the full input. A point-in-time feature cannot tell the two apart; a
column that differs used data after t. Labels look ahead by design and must be reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

KEY = ("instrument", "event_timestamp")
Compute = Callable[[pl.DataFrame, pl.DataFrame | None], pl.DataFrame]


@dataclass(frozen=True)
class LookaheadReport:
    """Per column, the sampled timestamps at which the truncated input gave another value."""

    checked: int
    columns: dict[str, list[dt.datetime]]

    @property
    def looks_ahead(self) -> list[str]:
        """Columns that used data after their timestamp at least once."""
        return sorted(name for name, times in self.columns.items() if times)


def _truncate(bars: pl.DataFrame, book: pl.DataFrame | None, t: dt.datetime, bar_s: int):
    bar_end = pl.col("bar_start") + pl.duration(seconds=bar_s)
    return bars.filter(bar_end <= t), None if book is None else book.filter(pl.col("time") <= t)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN on both sides
    return a == b


def check_lookahead(
    compute: Compute,
    bars: pl.DataFrame,
    at: Sequence[dt.datetime],
    bar_s: int,
    book: pl.DataFrame | None = None,
) -> LookaheadReport:
    """Run ``compute(bars, book)`` on the full input and on the input cut off at each time in
    ``at``; report every column whose row at that time differs (or is missing) between the two."""
    full = compute(bars, book)
    columns = [c for c in full.columns if c not in KEY]
    differs: dict[str, list[dt.datetime]] = {c: [] for c in columns}
    for t in at:
        expected = full.filter(pl.col("event_timestamp") == t)
        cut_bars, cut_book = _truncate(bars, book, t, bar_s)
        actual = compute(cut_bars, cut_book).filter(pl.col("event_timestamp") == t)
        joined = expected.join(actual, on=list(KEY), how="left", suffix="__cut")
        present = joined.height == expected.height and actual.height == expected.height
        for column in columns:
            pairs = zip(joined[column].to_list(), joined[f"{column}__cut"].to_list(), strict=True)
            if not present or not all(_same(a, b) for a, b in pairs):
                differs[column].append(t)
    return LookaheadReport(checked=len(at), columns=differs)
