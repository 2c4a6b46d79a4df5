"""gold.cross_features: the ``cross`` feature group per day × own instrument, from silver.bars_1s
of the own instrument and of its reference (``TRADING_CROSS_PAIRS``).

Warm-up is gold.features' rule (:mod:`trading_assets.lib.feature_store.gold`): the previous day's
last ``max(windows_s)`` seconds of both instruments' bars are prepended when that day exists, so a
row's windows see the same bars a computation over both whole days would. The reference's bars
are read over the same span; a reference day without bars gives null reference-based features
(the own bars alone still set the grid), as live does while the reference is silent.

Funding: the lakehouse lands no funding rates yet, so ``funding_rate`` is null in gold (the live
path fills it for a pair with a perpetual). A model reading it learns nothing from it in batch.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from pyiceberg.table import Table

from trading_assets.lib.feature_store.gold import (
    GoldResult,
    MissingBarsError,
    gold_schema,
    warmup_bars,
    with_warmup,
    within_day,
)
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG, TIMESTAMP_FIELD
from trading_assets.lib.features import FeatureConfig
from trading_assets.lib.features.cross_venue import (
    CrossPair,
    compute_cross_features,
    cross_feature_names,
)
from trading_assets.lib.lakehouse.pipeline import (
    Lakehouse,
    event_range,
    partition_write,
    to_iceberg_arrow,
)
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE, TableDef
from trading_assets.lib.lakehouse.tables import read_partition, replace_partition

CROSS_FEATURES_TABLE = "gold.cross_features"


def cross_table(config: FeatureConfig = FEATURE_CONFIG) -> TableDef:
    """The gold.cross_features table for the cross group under ``config``."""
    return TableDef(CROSS_FEATURES_TABLE, gold_schema(cross_feature_names(config)))


def _bars_with_warmup(
    lake: Lakehouse, instrument: str, day: dt.date, seconds: int
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The instrument's bars of ``day`` and the previous day's warm-up bars (None: no such day)."""
    bars = read_partition(lake.table(BARS_1S_TABLE), day, instrument)
    return bars, warmup_bars(lake, instrument, day, seconds)


def day_cross_features(
    own: pl.DataFrame,
    reference: pl.DataFrame,
    day: dt.date,
    config: FeatureConfig = FEATURE_CONFIG,
) -> pl.DataFrame:
    """Cross features of the own bars against the reference bars (both warm-up included), the
    rows whose event_timestamp falls in the day ``(start, end]``."""
    return within_day(compute_cross_features(own, reference, None, config, bar_s=1), day)


def build_cross_features(
    lake: Lakehouse,
    own: str,
    reference: str,
    day: dt.date,
    config: FeatureConfig = FEATURE_CONFIG,
) -> GoldResult:
    """Compute the own instrument's cross features for ``day`` and replace its partition in
    gold.cross_features (one Iceberg commit)."""
    CrossPair.of(own, reference)  # checks the pair
    seconds = max(config.windows_s)
    own_bars, own_warmup = _bars_with_warmup(lake, own, day, seconds)
    if own_bars.is_empty():
        raise MissingBarsError(f"no 1 s bars for {own} {day}: materialize bars_1s first")
    ref_bars, ref_warmup = _bars_with_warmup(lake, reference, day, seconds)
    features = day_cross_features(
        with_warmup(own_bars, own_warmup), with_warmup(ref_bars, ref_warmup), day, config
    )
    table = _table(lake, config)
    rows = features.with_columns(trade_date=pl.lit(day, pl.Date))
    replace_partition(table, day, own, [to_iceberg_arrow(rows, table.schema())])
    return GoldResult(
        write=partition_write(table, day, own, event_range(features, pl.col(TIMESTAMP_FIELD))),
        features=features,
        warmup_bars=0 if own_warmup is None else own_warmup.height,
        warmed_up=own_warmup is not None,
    )


def _table(lake: Lakehouse, config: FeatureConfig) -> Table:
    return lake.table(cross_table(config))


def read_cross(lake: Lakehouse, own: str, day: dt.date) -> pl.DataFrame:
    """One day × own instrument partition of gold.cross_features."""
    return read_partition(_table(lake, FEATURE_CONFIG), day, own)
