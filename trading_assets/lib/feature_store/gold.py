"""gold.features: trades-only features per day × symbol, computed from silver.bars_1s.

Windows reach back up to ``max(windows_s)`` seconds, so the first bars of a day need the end of
the previous day. When that partition exists its last ``max(windows_s)`` seconds of bars are
prepended as warm-up (and dropped again after computing). When it does not (the first day of
history, or a day backfilled before its predecessor), the day's first minutes are computed from
the day's own bars only, exactly as the live sidecar does after a cold start; the result reports
``warmed_up=False`` so the asset can flag it, and rematerializing once the previous day exists
fixes those rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DateType, DoubleType, NestedField, StringType, TimestamptzType

from trading_assets.lib.feature_store.spec import (
    ENTITY,
    FEATURE_CONFIG,
    TIMESTAMP_FIELD,
    TRADE_GROUPS,
)
from trading_assets.lib.features import FeatureConfig, compute_features, feature_names
from trading_assets.lib.lakehouse.pipeline import (
    Lakehouse,
    PartitionWrite,
    event_range,
    partition_write,
    to_iceberg_arrow,
)
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE, TableDef
from trading_assets.lib.lakehouse.tables import read_partition, replace_partition


def gold_schema(columns: list[str]) -> Schema:
    """Iceberg schema of gold.features: partition keys, entity, event time, then ``columns``."""
    return Schema(
        NestedField(1, "trade_date", DateType(), required=True),
        NestedField(2, ENTITY, StringType(), required=True),
        NestedField(3, TIMESTAMP_FIELD, TimestamptzType(), required=True),
        *(NestedField(4 + i, name, DoubleType(), required=False) for i, name in enumerate(columns)),
    )


def gold_table(
    config: FeatureConfig = FEATURE_CONFIG, groups: tuple[str, ...] = TRADE_GROUPS
) -> TableDef:
    """The gold.features table for the features of ``groups`` under ``config``."""
    return TableDef("gold.features", gold_schema(feature_names(config, groups)))


@dataclass(frozen=True)
class GoldResult:
    """One written gold partition: the Iceberg write, its rows and how it was warmed up."""

    write: PartitionWrite
    features: pl.DataFrame
    """The partition's rows: symbol, event_timestamp and the feature columns."""
    warmup_bars: int
    warmed_up: bool


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC day as ``[start, end)`` datetimes."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def warmup_bars(lake: Lakehouse, symbol: str, day: dt.date, seconds: int) -> pl.DataFrame | None:
    """The previous day's bars the day's windows reach into (``select_warmup``), or None when
    that partition is empty."""
    previous = read_partition(lake.table(BARS_1S_TABLE), day - dt.timedelta(days=1), symbol)
    return None if previous.is_empty() else select_warmup(previous, day, seconds)


class MissingBarsError(LookupError):
    """The day × symbol partition has no 1 s bars to compute features from."""


def select_warmup(previous: pl.DataFrame, day: dt.date, seconds: int) -> pl.DataFrame:
    """Every bar of the previous day's last ``seconds``, plus the last bar before them, so the
    dense bar grid starts at or before ``day start - seconds`` (its close is carried forward into
    the window, as a computation over both whole days would)."""
    start, _ = day_bounds(day)
    threshold = start - dt.timedelta(seconds=seconds)
    previous = previous.sort("bar_start")
    before = previous.filter(pl.col("bar_start") < threshold).tail(1)
    return pl.concat([before, previous.filter(pl.col("bar_start") >= threshold)])


def day_features(
    bars: pl.DataFrame,
    warmup: pl.DataFrame | None,
    day: dt.date,
    config: FeatureConfig = FEATURE_CONFIG,
    groups: tuple[str, ...] = TRADE_GROUPS,
) -> pl.DataFrame:
    """Features of the day's bars (event_timestamp = bar close in (day start, day end]), the
    windows fed with the warm-up bars first."""
    features = compute_features(with_warmup(bars, warmup), config, groups=groups)
    return within_day(features, day)


def with_warmup(bars: pl.DataFrame, warmup: pl.DataFrame | None) -> pl.DataFrame:
    """The warm-up bars (when any), then the day's, in bar order."""
    history = bars if warmup is None or warmup.is_empty() else pl.concat([warmup, bars])
    return history.sort("bar_start")


def within_day(features: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """The rows whose event_timestamp (bar close) falls in the day ``(start, end]``, in order."""
    start, end = day_bounds(day)
    event = pl.col(TIMESTAMP_FIELD)
    return features.filter((event > start) & (event <= end)).sort(TIMESTAMP_FIELD)


def build_gold_features(
    lake: Lakehouse,
    symbol: str,
    day: dt.date,
    config: FeatureConfig = FEATURE_CONFIG,
    groups: tuple[str, ...] = TRADE_GROUPS,
) -> GoldResult:
    """Compute the partition's features and replace it in gold.features (one Iceberg commit)."""
    table_def = gold_table(config, groups)
    bars = read_partition(lake.table(BARS_1S_TABLE), day, symbol)
    if bars.is_empty():
        # An empty gold partition would look materialized while holding nothing to train on.
        raise MissingBarsError(f"no 1 s bars for {symbol} {day}: materialize bars_1s first")
    warmup = warmup_bars(lake, symbol, day, max(config.windows_s))
    features = day_features(bars, warmup, day, config, groups)
    table = _ensure_schema(lake, table_def)
    rows = features.with_columns(trade_date=pl.lit(day, pl.Date))
    replace_partition(table, day, symbol, [to_iceberg_arrow(rows, table.schema())])
    events = event_range(features, pl.col(TIMESTAMP_FIELD))
    return GoldResult(
        write=partition_write(table, day, symbol, events),
        features=features,
        warmup_bars=0 if warmup is None else warmup.height,
        warmed_up=warmup is not None,
    )


def _ensure_schema(lake: Lakehouse, table_def: TableDef) -> Table:
    """The gold table, its schema widened when the feature library gained columns."""
    table = lake.table(table_def)
    current = {field.name for field in table.schema().fields}
    if not {field.name for field in table_def.schema.fields} <= current:
        with table.update_schema() as update:
            update.union_by_name(table_def.schema)
        table = table.refresh()
    return table


def read_gold(lake: Lakehouse, symbol: str, day: dt.date) -> pl.DataFrame:
    """One day × symbol partition of gold.features."""
    return read_partition(lake.table(gold_table()), day, symbol)
