"""Level 4: recompute a symbol's features from a microbatch of recent silver trades.

The recomputation is the batch definition itself (``bars_from_trades`` → ``compute_features``),
so the vector equals the gold features at the same event time whenever the microbatch reaches
back at least the longest window plus one bar before that time: a window that reaches before the
microbatch's first bar is null (warm-up), never wrong. Silver has no book data, so book features
are NaN at this level.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from streaming.fallback.decision import NS_PER_S, ordered_vector
from trading_assets.lib.features import TRADE_GROUPS, FeatureConfig, compute_features, feature_names
from trading_assets.lib.features.definitions import PRICE
from trading_assets.lib.lakehouse.bars import SILVER_BAR_COLUMNS, bars_from_trades

if TYPE_CHECKING:  # the catalog is opened by the silver pull's worker (streaming.silver_pull)
    from trading_assets.lib.lakehouse.pipeline import Lakehouse


def features_from_silver(
    trades: pl.DataFrame, names: Sequence[str], config: FeatureConfig, bar_s: int = 1
) -> tuple[dict[str, float], int] | None:
    """The features at the end of the newest bar of one symbol's silver trades, in ``names``
    order (NaN where not computable from trades), and that bar's end in ns; None without trades.
    """
    if trades.is_empty():
        return None
    symbols = trades["instrument"].unique().to_list()
    if len(symbols) != 1:
        raise ValueError(f"a silver microbatch holds one instrument, got {symbols}")
    wanted = set(names)
    groups = [g for g in TRADE_GROUPS if wanted & set(feature_names(config, (g,)))] or [PRICE]
    bars = bars_from_trades(trades.select(SILVER_BAR_COLUMNS), f"{bar_s}s")
    rows = compute_features(bars, config, groups, bar_s=bar_s)
    newest = rows.sort("event_timestamp").row(-1, named=True)
    event_time: dt.datetime = newest["event_timestamp"]
    event_time_ns = _epoch_ns(event_time)
    return ordered_vector(tuple(names), newest), event_time_ns


def _epoch_ns(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def _utc(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1_000)


class IcebergSilverMicrobatch:
    """A :data:`~streaming.fallback.decision.SilverSource` over the lakehouse's silver table.

    Reads the (day, symbol) partitions the interval touches, keeping the trades inside it as
    they are read: the event times of the whole partition are decoded, the other columns only
    for the interval's rows, so a pull costs a scan of the day but never holds the day in
    memory (a whole busy day would add a hundred MB and more to the sidecar). The controller
    rate-limits pulls per symbol.
    """

    def __init__(self, lake: Lakehouse) -> None:
        self.lake = lake

    def __call__(self, symbol: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """Silver trades of ``symbol`` with ``start_ns ≤ event_time ≤ end_ns``."""
        from trading_assets.lib.lakehouse.pipeline import read_silver

        start, end = _utc(start_ns), _utc(end_ns)
        inside = pl.col("event_time").is_between(start, end)
        day, frames = start.date(), []
        while day <= end.date():
            frames.append(read_silver(self.lake, symbol, day, SILVER_BAR_COLUMNS, where=inside))
            day += dt.timedelta(days=1)
        return pl.concat(frames, how="vertical_relaxed").sort("trade_id")
