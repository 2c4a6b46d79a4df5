"""The newest labelled rows, for the 5-minute incremental model.

Read straight from gold.features and the 1 s bars rather than through Feast's as-of join: gold rows
and label rows share the bar-close timestamp, so an exact join on (symbol, event_timestamp) is the
point-in-time join with zero feature age, and it costs a partition read instead of the offline
store's scan of the whole export. Only labels whose horizon has fully passed are known, so the
newest rows end one label horizon before the newest bar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from trading_assets.lib.feature_store import offline
from trading_assets.lib.feature_store.gold import read_gold
from trading_assets.lib.feature_store.spec import (
    ENTITY,
    FEATURE_CONFIG,
    TIMESTAMP_FIELD,
    service_features,
)
from trading_assets.lib.feature_store.training import labels_for_day, write_training_frame
from trading_assets.lib.features import FeatureConfig, label_names
from trading_assets.lib.lakehouse.pipeline import Lakehouse

RECENT_PREFIX = "recent_"


@dataclass(frozen=True)
class RecentRows:
    """The written frame of newest rows and where it came from."""

    path: str
    rows: int
    first: dt.datetime | None
    last: dt.datetime | None
    per_symbol: dict[str, int]
    partitions: list[tuple[dt.date, str]]


def newest_partitions(offline_dir: str) -> list[tuple[dt.date, str]]:
    """Each symbol's newest exported day, plus the day before when exported (a window of up to
    24 h ending early in the newest day reaches back into it)."""
    exported = set(offline.parse_partition_name(f) for f in offline.list_partitions(offline_dir))
    newest: dict[str, dt.date] = {}
    for day, symbol in exported:
        newest[symbol] = max(day, newest.get(symbol, day))
    chosen = []
    for symbol, day in newest.items():
        chosen.append((day, symbol))
        if (day - dt.timedelta(days=1), symbol) in exported:
            chosen.append((day - dt.timedelta(days=1), symbol))
    return sorted(chosen)


def labelled_rows(
    lake: Lakehouse, symbol: str, day: dt.date, columns: list[str], config: FeatureConfig
) -> pl.DataFrame:
    """One partition's gold features joined to its known labels, on the shared timestamp."""
    value, sign = label_names(config)
    gold = read_gold(lake, symbol, day)
    labels = labels_for_day(lake, symbol, day, config)
    if gold.is_empty() or labels.is_empty():
        return pl.DataFrame()
    present = [c for c in columns if c in gold.columns]
    return gold.select(ENTITY, TIMESTAMP_FIELD, *present).join(
        labels.select(ENTITY, TIMESTAMP_FIELD, value, sign, "label_end"),
        on=[ENTITY, TIMESTAMP_FIELD],
        how="inner",
    )


def recent_rows(
    lake: Lakehouse,
    offline_dir: str,
    training_dir: str,
    service: str,
    hours: float = 2.0,
    sample_every_s: int = 1,
    config: FeatureConfig = FEATURE_CONFIG,
) -> RecentRows:
    """The newest ``hours`` of labelled rows of every symbol (each symbol's own newest label
    time as the end), one row every ``sample_every_s`` s, written to
    ``<training_dir>/recent_<service>.parquet``."""
    if not 0 < hours <= 24 or sample_every_s < 1:
        raise ValueError(f"need 0 < hours <= 24 and sample_every_s >= 1: {hours}, {sample_every_s}")
    partitions = newest_partitions(offline_dir)
    if not partitions:
        raise ValueError(f"no exported gold partitions under {offline_dir}")
    columns = service_features(service, config)
    parts = [labelled_rows(lake, s, d, columns, config) for d, s in partitions]
    parts = [p for p in parts if not p.is_empty()]
    if not parts:
        raise ValueError("the newest gold partitions hold no row with a known label yet")
    every_us = sample_every_s * 1_000_000
    event = pl.col(TIMESTAMP_FIELD)
    frame = (
        pl.concat(parts, how="diagonal_relaxed")
        .filter(event > event.max().over(ENTITY) - dt.timedelta(hours=hours))
        .filter(event.dt.epoch("us") % every_us == 0)
        .sort(ENTITY, TIMESTAMP_FIELD)
    )
    path = write_training_frame(frame, training_dir, RECENT_PREFIX + service)
    counts = frame.group_by(ENTITY).len().sort(ENTITY)
    return RecentRows(
        path=path,
        rows=frame.height,
        first=frame[TIMESTAMP_FIELD].min() if frame.height else None,  # type: ignore[arg-type]
        last=frame[TIMESTAMP_FIELD].max() if frame.height else None,  # type: ignore[arg-type]
        per_symbol={str(s): int(n) for s, n in counts.iter_rows()},
        partitions=partitions,
    )
