"""Data-quality checks per day × symbol partition.

Corruption blocks downstream assets (``blocking=True``, ERROR): unreconciled row counts,
duplicate trade ids left in silver, event time running backwards. Gaps in trade ids and price
spikes happen in real markets (outages, flash moves), so they only warn.
"""

import datetime as dt
from typing import Any

import dagster as dg

from trading_assets.defs.ingest.partitions import day_and_symbol, trade_partitions
from trading_assets.defs.lakehouse.assets import silver_trades
from trading_assets.lib.lakehouse import pipeline, quality
from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.resources.iceberg import IcebergCatalogResource

SPIKE_THRESHOLD = 0.05  # relative deviation from the rolling median of ~100 trades


def _examples(report: quality.CountReport) -> dict[str, Any]:
    return {"examples": dg.MetadataValue.json([dict(e) for e in report.examples])}


def evaluate_rows_reconcile(lake: Lakehouse, day: dt.date, symbol: str) -> dg.AssetCheckResult:
    counts = pipeline.reconcile(lake, symbol, day)
    return dg.AssetCheckResult(
        passed=counts.balanced,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "raw_rows": counts.raw_rows,
            "bronze_rows": counts.bronze_rows,
            "silver_rows": counts.silver_rows,
            "quarantine_rows": counts.quarantine_rows,
        },
    )


def evaluate_no_duplicates(lake: Lakehouse, day: dt.date, symbol: str) -> dg.AssetCheckResult:
    report = quality.duplicate_trade_ids(pipeline.read_silver(lake, symbol, day, ("trade_id",)))
    return dg.AssetCheckResult(
        passed=report.count == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"extra_copies": report.count, **_examples(report)},
    )


def evaluate_time_order(lake: Lakehouse, day: dt.date, symbol: str) -> dg.AssetCheckResult:
    trades = pipeline.read_silver(lake, symbol, day, ("trade_id", "event_time"))
    report = quality.time_backwards(trades)
    return dg.AssetCheckResult(
        passed=report.count == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"backwards_steps": report.count, **_examples(report)},
    )


def evaluate_gaps(lake: Lakehouse, day: dt.date, symbol: str) -> dg.AssetCheckResult:
    trades = pipeline.read_silver(lake, symbol, day, ("trade_id",))
    report = quality.trade_id_gaps(trades["trade_id"])
    return dg.AssetCheckResult(
        passed=report.missing_ids == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "missing_ids": report.missing_ids,
            "gap_count": report.gap_count,
            "gap_ranges": dg.MetadataValue.json([list(r) for r in report.ranges]),
        },
    )


def evaluate_spikes(lake: Lakehouse, day: dt.date, symbol: str) -> dg.AssetCheckResult:
    trades = pipeline.read_silver(lake, symbol, day, ("trade_id", "price"))
    report = quality.price_spikes(trades, threshold=SPIKE_THRESHOLD)
    return dg.AssetCheckResult(
        passed=report.count == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"spikes": report.count, "threshold": SPIKE_THRESHOLD, **_examples(report)},
    )


def _partition(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource
) -> tuple[Lakehouse, dt.date, str]:
    day, symbol = day_and_symbol(context.partition_key)
    return iceberg.lakehouse(), day, symbol


@dg.asset_check(asset=silver_trades, blocking=True, partitions_def=trade_partitions)
def rows_reconcile(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource
) -> dg.AssetCheckResult:
    """Every raw row is in bronze, and in exactly one of silver or quarantine."""
    return evaluate_rows_reconcile(*_partition(context, iceberg))


@dg.asset_check(asset=silver_trades, blocking=True, partitions_def=trade_partitions)
def no_duplicate_trade_ids(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource
) -> dg.AssetCheckResult:
    """silver.trades holds each trade id once."""
    return evaluate_no_duplicates(*_partition(context, iceberg))


@dg.asset_check(asset=silver_trades, blocking=True, partitions_def=trade_partitions)
def time_never_goes_backwards(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource
) -> dg.AssetCheckResult:
    """In trade-id order, no trade is earlier than the one before it."""
    return evaluate_time_order(*_partition(context, iceberg))


@dg.asset_check(asset=silver_trades, partitions_def=trade_partitions)
def trade_id_gaps(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource
) -> dg.AssetCheckResult:
    """Trade ids are contiguous within the day (gaps warn: missing or quarantined trades)."""
    return evaluate_gaps(*_partition(context, iceberg))


@dg.asset_check(asset=silver_trades, partitions_def=trade_partitions)
def no_price_spikes(
    context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource
) -> dg.AssetCheckResult:
    """No trade strays more than 5 % from the rolling median of its ~100 neighbours (warns)."""
    return evaluate_spikes(*_partition(context, iceberg))
