"""Data-quality checks per day × symbol partition.

Corruption blocks downstream assets (``blocking=True``, ERROR): unreconciled row counts,
duplicate trade ids left in silver, event time running backwards. Gaps in trade ids and price
spikes happen in real markets (outages, flash moves), so they only warn.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from trading_assets.defs.ingest.partitions import run_partitions, trade_partitions
from trading_assets.defs.lakehouse.assets import silver_trades
from trading_assets.defs.store_retries import retry_on_store_outage
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
            "raw_rows": counts.raw_rows
            if counts.raw_rows is not None
            else dg.MetadataValue.text("none: the venue publishes no daily files"),
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


Evaluate = Callable[[Lakehouse, dt.date, str], dg.AssetCheckResult]


def _silver_check(
    name: str, evaluate: Evaluate, description: str, *, blocking: bool = False
) -> dg.AssetChecksDefinition:
    """A check of silver_trades that runs ``evaluate`` on each partition the run covers.

    Dagster records a returned ``AssetCheckResult`` against the run's partition only when the run
    has a single one; in a live pickup's range run it would be recorded for no partition at all.
    So the check yields one evaluation per partition, naming the partition and the
    materialization it judged (the UI compares that with the newest one to tell whether the
    result is current); a failed blocking one still stops the bars.
    """

    # Any: the decorator's type allows one returned AssetCheckResult, not yielded evaluations.
    def check(context: dg.AssetCheckExecutionContext, iceberg: IcebergCatalogResource) -> Any:
        for key, day, symbol in run_partitions(context):
            result = evaluate(iceberg.lakehouse(), day, symbol)
            yield dg.AssetCheckEvaluation(
                asset_key=silver_trades.key,
                check_name=name,
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
                blocking=blocking,
                partition=key,
                target_materialization_data=_newest_materialization(context.instance, key),
            )
        yield dg.Output(None)

    return dg.asset_check(
        asset=silver_trades,
        name=name,
        description=description,
        blocking=blocking,
        partitions_def=trade_partitions,
    )(retry_on_store_outage(check))


def _newest_materialization(
    instance: dg.DagsterInstance, partition: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=silver_trades.key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp
    )


rows_reconcile = _silver_check(
    "rows_reconcile",
    evaluate_rows_reconcile,
    "Every raw row is in bronze, and in exactly one of silver or quarantine.",
    blocking=True,
)
no_duplicate_trade_ids = _silver_check(
    "no_duplicate_trade_ids",
    evaluate_no_duplicates,
    "silver.trades holds each trade id once.",
    blocking=True,
)
time_never_goes_backwards = _silver_check(
    "time_never_goes_backwards",
    evaluate_time_order,
    "In trade-id order, no trade is earlier than the one before it.",
    blocking=True,
)
trade_id_gaps = _silver_check(
    "trade_id_gaps",
    evaluate_gaps,
    "Trade ids are contiguous within the day (gaps warn: missing or quarantined trades).",
)
no_price_spikes = _silver_check(
    "no_price_spikes",
    evaluate_spikes,
    "No trade strays more than 5 % from the rolling median of its ~100 neighbours (warns).",
)
