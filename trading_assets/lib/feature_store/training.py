"""Point-in-time training frames: labels from the bars, features through Feast.

Entity rows are the label rows (symbol × bar close). Feast's historical retrieval gives each row
the feature values with the greatest ``event_timestamp`` at or before the row's timestamp (and
no older than the view's TTL), so no feature can see the future. Labels are forward returns
over the ``label_horizon_s`` seconds strictly after the row's timestamp; ``label_end`` says when
a label became known, so a trainer can purge rows whose label overlaps its validation period.
Rows without a label (the last horizon of the data) are dropped, and so are rows for which no
feature row exists within the TTL (before a symbol's first feature row, or after a gap longer
than the TTL): every feature is null there, so they carry nothing to learn from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from trading_assets.lib.feature_store import offline
from trading_assets.lib.feature_store.gold import day_bounds
from trading_assets.lib.feature_store.offline import write_parquet_atomic
from trading_assets.lib.feature_store.spec import (
    ENTITY,
    FEATURE_CONFIG,
    TIMESTAMP_FIELD,
    TRAINING_SERVICE,
)
from trading_assets.lib.features import FeatureConfig, compute_labels, label_names
from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import read_partition

if TYPE_CHECKING:
    from feast import FeatureStore


def labels_from_bars(bars: pl.DataFrame, config: FeatureConfig = FEATURE_CONFIG) -> pl.DataFrame:
    """Labels of every bar with a complete horizon ahead, per symbol, with ``label_end``."""
    value, _ = label_names(config)
    return (
        compute_labels(bars, config)
        .filter(pl.col(value).is_not_null() & pl.col(value).is_finite())
        .with_columns(
            label_end=pl.col(TIMESTAMP_FIELD) + dt.timedelta(seconds=config.label_horizon_s)
        )
        .sort(ENTITY, TIMESTAMP_FIELD)
    )


def historical_features(store: FeatureStore, service: str, entities: pl.DataFrame) -> pl.DataFrame:
    """Feast's point-in-time join of the service's features onto ``symbol``/``event_timestamp``
    rows (the offline store reads the gold export)."""
    entity_df = (
        entities.select(ENTITY, pl.col(TIMESTAMP_FIELD).cast(pl.Datetime("us", "UTC")))
        .unique()
        .to_pandas()
    )
    job = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(service)
    )
    frame = pl.from_pandas(job.to_df())
    return frame.with_columns(pl.col(TIMESTAMP_FIELD).cast(pl.Datetime("us", "UTC")))


def training_frame(
    store: FeatureStore,
    service: str,
    labels: pl.DataFrame,
    config: FeatureConfig = FEATURE_CONFIG,
) -> pl.DataFrame:
    """Labels joined to the service's point-in-time features; one row per labelled bar."""
    if labels.is_empty():
        raise ValueError("no labelled rows: the bars hold less than one label horizon")
    # One retrieval per day keeps the join's memory to a day's rows, however many days are asked.
    days = labels.with_columns(_day=pl.col(TIMESTAMP_FIELD).dt.date()).partition_by("_day")
    features = pl.concat(
        [historical_features(store, service, day) for day in days], how="vertical_relaxed"
    )
    feature_cols = [c for c in features.columns if c not in (ENTITY, TIMESTAMP_FIELD)]
    value, sign = label_names(config)
    joined = labels.select(ENTITY, TIMESTAMP_FIELD, value, sign, "label_end").join(
        features, on=[ENTITY, TIMESTAMP_FIELD], how="inner"
    )
    has_features = pl.any_horizontal(pl.col(feature_cols).is_not_null())
    return (
        joined.filter(has_features)
        .select(ENTITY, TIMESTAMP_FIELD, *feature_cols, value, sign, "label_end")
        .sort(ENTITY, TIMESTAMP_FIELD)
    )


@dataclass(frozen=True)
class TrainingSummary:
    """Row count, time span, label balance, per-feature null rates and symbols of a frame."""

    rows: int
    first: dt.datetime | None
    last: dt.datetime | None
    class_balance: dict[str, int]
    null_rates: dict[str, float]
    symbols: list[str]


def summarize(frame: pl.DataFrame, config: FeatureConfig = FEATURE_CONFIG) -> TrainingSummary:
    """What a training frame holds, for the asset's metadata."""
    value, sign = label_names(config)
    features = [
        c for c in frame.columns if c not in (ENTITY, TIMESTAMP_FIELD, value, sign, "label_end")
    ]
    balance: dict[str, Any] = {}
    if frame.height:
        counts = frame.group_by(sign).len().sort(sign)
        balance = {str(key): int(n) for key, n in counts.iter_rows()}
    nulls = frame.select(pl.col(features).null_count()) if features else pl.DataFrame()
    return TrainingSummary(
        rows=frame.height,
        first=frame[TIMESTAMP_FIELD].min() if frame.height else None,  # type: ignore[arg-type]
        last=frame[TIMESTAMP_FIELD].max() if frame.height else None,  # type: ignore[arg-type]
        class_balance=balance,
        null_rates={
            c: round(nulls[c][0] / frame.height, 6) if frame.height else 0.0 for c in features
        },
        symbols=sorted(frame[ENTITY].unique().to_list()) if frame.height else [],
    )


def write_training_frame(frame: pl.DataFrame, directory: str, service: str) -> str:
    """Write ``<directory>/<service>.parquet`` atomically; return its location."""
    target = f"{directory.rstrip('/')}/{service}.parquet"
    write_parquet_atomic(frame.to_arrow(), target)
    return target


def labels_for_day(
    lake: Lakehouse, symbol: str, day: dt.date, config: FeatureConfig
) -> pl.DataFrame:
    """Labels of one day's bars; the next day's first horizon of bars (when present) completes
    the labels of the day's last minute. Computed per day so a missing day is never bridged."""
    bars = read_partition(lake.table(BARS_1S_TABLE), day, symbol)
    start, end = day_bounds(day)
    following = read_partition(lake.table(BARS_1S_TABLE), day + dt.timedelta(days=1), symbol)
    horizon = dt.timedelta(seconds=config.label_horizon_s)
    following = following.filter(pl.col("bar_start") < end + horizon)
    labels = labels_from_bars(pl.concat([bars, following]), config)
    if labels.is_empty():
        return labels
    event = pl.col(TIMESTAMP_FIELD)
    return labels.filter((event > start) & (event <= end))


@dataclass(frozen=True)
class TrainingResult:
    """The written training frame: location, service, source partitions and summary."""

    path: str
    service: str
    partitions: list[tuple[dt.date, str]]
    summary: TrainingSummary


def newest_days(days: set[dt.date], last_days: int) -> set[dt.date]:
    """The days among ``days`` within ``last_days`` calendar days of the newest one: a gap in
    the history shortens the window rather than reaching further back in time."""
    if last_days < 1:
        raise ValueError(f"last_days must be at least 1, got {last_days}")
    if not days:
        return set()
    first = max(days) - dt.timedelta(days=last_days - 1)
    return {d for d in days if d >= first}


def assemble_training_set(
    lake: Lakehouse,
    store: FeatureStore,
    offline_dir: str,
    training_dir: str,
    service: str = TRAINING_SERVICE,
    last_days: int = 30,
    symbols: list[str] | None = None,
    sample_every_s: int = 10,
    config: FeatureConfig = FEATURE_CONFIG,
) -> TrainingResult:
    """Training frame over the newest ``last_days`` exported days, one row per symbol every
    ``sample_every_s`` seconds (neighbouring seconds share most of a 60 s label, and the point-in-
    time join costs grow with the rows asked for), written as parquet."""
    exported = [offline.parse_partition_name(f) for f in offline.list_partitions(offline_dir)]
    if symbols:
        wanted = set(symbols)
        exported = [(d, s) for d, s in exported if s in wanted]
    days = newest_days({d for d, _ in exported}, last_days)
    partitions = sorted((d, s) for d, s in exported if d in days)
    if not partitions:
        raise ValueError(f"no exported gold partitions under {offline_dir}")
    labels = pl.concat(
        [labels_for_day(lake, s, d, config) for d, s in partitions], how="vertical_relaxed"
    )
    every_us = sample_every_s * 1_000_000
    labels = labels.filter(pl.col(TIMESTAMP_FIELD).dt.epoch("us") % every_us == 0)
    frame = training_frame(store, service, labels, config)
    path = write_training_frame(frame, training_dir, service)
    return TrainingResult(path, service, partitions, summarize(frame, config))
