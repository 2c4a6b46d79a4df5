"""gold.depth_features: the ``depth`` feature group per day × instrument, from silver's captured
L2 book of the day (:mod:`trading_assets.lib.features.depth`, the class the sidecar runs live).

Each day stands alone: its segments start with their sync snapshots (the sidecar starts one at
every UTC day), so no warm-up from the previous day is needed, and the rows run from the day's
first book line to its last. A day without captured book data has no rows.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from trading_assets.lib.book.lakehouse import read_silver_book
from trading_assets.lib.feature_store.gold import GoldResult, gold_schema, within_day
from trading_assets.lib.feature_store.spec import ENTITY, FEATURE_CONFIG, TIMESTAMP_FIELD
from trading_assets.lib.features import FeatureConfig
from trading_assets.lib.features.depth import depth_feature_names, depth_rows
from trading_assets.lib.features.incremental import FeatureRow
from trading_assets.lib.lakehouse.pipeline import (
    Lakehouse,
    event_range,
    partition_write,
    to_iceberg_arrow,
)
from trading_assets.lib.lakehouse.schemas import TableDef
from trading_assets.lib.lakehouse.tables import read_partition, replace_partition

DEPTH_FEATURES_TABLE = "gold.depth_features"


def depth_table(config: FeatureConfig = FEATURE_CONFIG) -> TableDef:
    """The gold.depth_features table for the depth group under ``config``."""
    return TableDef(DEPTH_FEATURES_TABLE, gold_schema(depth_feature_names(config)))


def rows_frame(rows: list[FeatureRow], config: FeatureConfig = FEATURE_CONFIG) -> pl.DataFrame:
    """Depth rows as a frame: instrument, event_timestamp, then the features in order."""
    names = depth_feature_names(config)
    return pl.DataFrame(
        {
            ENTITY: [row.symbol for row in rows],
            TIMESTAMP_FIELD: [row.event_timestamp_us for row in rows],
            **{name: [row.values[name] for row in rows] for name in names},
        },
        schema={ENTITY: pl.String, TIMESTAMP_FIELD: pl.Int64, **dict.fromkeys(names, pl.Float64)},
    ).with_columns(pl.col(TIMESTAMP_FIELD).cast(pl.Datetime("us", "UTC")))


def build_depth_features(
    lake: Lakehouse, instrument: str, day: dt.date, config: FeatureConfig = FEATURE_CONFIG
) -> GoldResult:
    """Compute the day's depth features from silver's book and replace the partition in
    gold.depth_features (one Iceberg commit)."""
    diffs, snapshots = read_silver_book(lake, instrument, day)
    features = within_day(rows_frame(depth_rows(instrument, diffs, snapshots, config), config), day)
    table = lake.table(depth_table(config))
    rows = features.with_columns(trade_date=pl.lit(day, pl.Date))
    replace_partition(table, day, instrument, [to_iceberg_arrow(rows, table.schema())])
    return GoldResult(
        write=partition_write(
            table, day, instrument, event_range(features, pl.col(TIMESTAMP_FIELD))
        ),
        features=features,
        warmup_bars=0,
        warmed_up=False,
    )


def read_depth(lake: Lakehouse, instrument: str, day: dt.date) -> pl.DataFrame:
    """One day × instrument partition of gold.depth_features."""
    return read_partition(lake.table(depth_table()), day, instrument)
