"""Materialization metadata of the feature assets: row counts, event-time ranges, null counts."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from trading_assets.defs.lakehouse.metadata import partition_write_metadata
from trading_assets.defs.watermark import watermark_metadata
from trading_assets.lib.feature_store.gold import GoldResult
from trading_assets.lib.feature_store.offline import ExportResult
from trading_assets.lib.feature_store.repo import ApplySummary
from trading_assets.lib.feature_store.spec import ENTITY, TIMESTAMP_FIELD
from trading_assets.lib.feature_store.training import TrainingResult

SPARK_POINTS = 48
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: pl.Series, points: int = SPARK_POINTS) -> str:
    """A text sparkline (cheaper than an image, readable in the UI's metadata table)."""
    clean = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    if clean.is_empty():
        return ""
    step = max(1, clean.len() // points)
    sampled = clean.gather_every(step).to_list()
    low, high = min(sampled), max(sampled)
    span = (high - low) or 1.0
    return "".join(SPARK_BLOCKS[int((v - low) / span * (len(SPARK_BLOCKS) - 1))] for v in sampled)


def gold_metadata(result: GoldResult, export: ExportResult) -> dict[str, Any]:
    frame = result.features
    features = [c for c in frame.columns if c not in (ENTITY, TIMESTAMP_FIELD)]
    nulls = frame.select(pl.col(features).null_count()).row(0, named=True) if frame.height else {}
    metadata = {
        **partition_write_metadata(result.write),
        "null_counts": dg.MetadataValue.json({k: int(v) for k, v in nulls.items()}),
        "warmed_up_from_previous_day": result.warmed_up,
        "warmup_bars": dg.MetadataValue.int(result.warmup_bars),
        "offline_export": dg.MetadataValue.path(export.path),
        "offline_rows": dg.MetadataValue.int(export.rows),
    }
    probe = next((c for c in features if c.startswith(("mom_", "basis_bps_"))), None)
    if probe and frame.height:
        metadata[f"{probe} (day)"] = dg.MetadataValue.text(sparkline(frame[probe]))
    return metadata


# The registry is definitions only: applying it reads no market data, so its watermark would be
# the time of a code change, which lineage must not mistake for data freshness.
REGISTRY_WATERMARK_NOTE = "definitions only (entities, views, services): no market data"


def apply_metadata(summary: ApplySummary) -> dict[str, Any]:
    return {
        "changed": summary.changed,
        "changes": dg.MetadataValue.json(summary.changes),
        "feature_views": dg.MetadataValue.json(summary.feature_views),
        "feature_services": dg.MetadataValue.json(summary.feature_services),
        **watermark_metadata(None, REGISTRY_WATERMARK_NOTE),
    }


def training_metadata(result: TrainingResult) -> dict[str, Any]:
    summary = result.summary
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(result.path),
        "feature_service": result.service,
        "dagster/row_count": dg.MetadataValue.int(summary.rows),
        "rows": dg.MetadataValue.int(summary.rows),
        "symbols": dg.MetadataValue.json(summary.symbols),
        "partitions": dg.MetadataValue.int(len(result.partitions)),
        "class_balance": dg.MetadataValue.json(summary.class_balance),
        "feature_null_rates": dg.MetadataValue.json(summary.null_rates),
    }
    if summary.first is not None:
        metadata["first_event_time"] = dg.MetadataValue.timestamp(summary.first)
    metadata.update(watermark_metadata(summary.last, "no rows in the training set"))
    return metadata
