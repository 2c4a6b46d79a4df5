"""Live pickup: a sensor turns newly sealed landed trade segments into bronze + silver runs.

Each run rebuilds its day × symbol bronze partition from every sealed segment of that day and
replaces it in one Iceberg commit; silver follows in the same run and drops repeated trade ids
to quarantine. A run is therefore idempotent: running it twice, or after more segments sealed,
never duplicates a trade. The sensor's cursor remembers, per partition, the newest segment
already requested, and the run key names that segment, so each state is requested once. Days
whose bulk file is stored (``raw_trades`` materialized) are left to the bulk path, which is
authoritative and replaces the live rows.

The same run goes on to ``bars_1s`` and ``features`` of the partition. Live model metrics and the
rollout score predictions against today's ``bars_1s``, and the incremental model trains on
today's newest gold rows, so those must follow every pickup. Left to eager automation they did
not under ``make run``: the sensor keeps a run of each live partition queued or running most of
the time, and eager holds a partition back while its upstream is in progress, so today's bars
could go unrefreshed for as long as the live feed ran. bars_1m and the Feast assets still follow
by automation (nothing live reads them).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from trading_assets.defs.features.assets import features
from trading_assets.defs.ingest.partitions import DATE_DIMENSION, SYMBOL_DIMENSION, trade_partitions
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
from trading_assets.defs.lakehouse.checks import (
    no_duplicate_trade_ids,
    no_price_spikes,
    time_never_goes_backwards,
    trade_id_gaps,
)
from trading_assets.lib.lakehouse.landing import default_landing_root, newest_sealed_stems

LIVE_JOB_NAME = "live_trades_ingest"
PICKUP_INTERVAL_S = 30  # segments seal every ~20 s, so a trade reaches silver within a minute
_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class LandingResource(dg.ConfigurableResource):
    """The streaming sidecar's landing folder (the same one its ``LandingWriter`` writes)."""

    root: str = Field(
        default_factory=lambda: str(default_landing_root()),
        description="Landing folder (default: TRADING_LANDING_DIR or <data dir>/landing).",
    )

    def root_path(self) -> Path:
        """The folder as an absolute path."""
        return Path(self.root).resolve()


live_trades_ingest = dg.define_asset_job(
    LIVE_JOB_NAME,
    # rows_reconcile counts the bulk zip's rows, which a live day does not have yet; bronze's
    # rows are the landed records by construction.
    selection=dg.AssetSelection.assets(
        bronze_trades, silver_trades, bars_1s, features
    ).without_checks()
    | dg.AssetSelection.checks(
        no_duplicate_trade_ids, time_never_goes_backwards, trade_id_gaps, no_price_spikes
    ),
    # A day that has ended seals no further segment, so the sensor would not ask again.
    op_retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
    description=(
        "Landed live trades of one day × symbol → bronze → silver (+ quarantine) → bars_1s "
        "→ features."
    ),
)


def live_run_config(landing_root: Path) -> dict:
    """Run config that points bronze_trades at the landing folder the sensor looked at."""
    return {"ops": {bronze_trades.op.name: {"config": {"landing_root": str(landing_root)}}}}


def _partition_key(day: dt.date, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE_DIMENSION: day.isoformat(), SYMBOL_DIMENSION: symbol})


def _bulk_stored(instance: dg.DagsterInstance, key: dg.MultiPartitionKey) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_trades.key, asset_partitions=[str(key)]), limit=1
    ).records
    return bool(records)


def _run_in_progress(instance: dg.DagsterInstance, key: dg.MultiPartitionKey) -> bool:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(
            job_name=LIVE_JOB_NAME, statuses=_IN_PROGRESS, tags={"dagster/partition": str(key)}
        ),
        limit=1,
    )
    return bool(runs)


@dg.sensor(
    name="live_trades_landing",
    job=live_trades_ingest,
    minimum_interval_seconds=PICKUP_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sealed landed trade segments → bronze, silver, bars_1s and features of their day × symbol."
    ),
)
def live_trades_landing(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> dg.SensorResult:
    """Request one ingestion per partition whose newest sealed segment is not ingested yet."""
    root = landing.root_path()
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    newest = newest_sealed_stems(root)
    cursor: dict[str, str] = {}
    run_requests: list[dg.RunRequest] = []
    waiting: list[str] = []
    for (day, symbol), stem in sorted(newest.items()):
        key = _partition_key(day, symbol)
        name = str(key)
        done = requested.get(name, "")
        cursor[name] = done  # partitions whose folders are gone drop out of the cursor
        if stem <= done:
            continue
        # A day the partitions do not offer yet (or a symbol not traded here) waits.
        if not trade_partitions.has_partition_key(key) or _run_in_progress(context.instance, key):
            waiting.append(name)
            continue
        cursor[name] = stem
        if _bulk_stored(context.instance, key):
            continue
        run_requests.append(
            dg.RunRequest(
                run_key=f"{name}@{stem}",
                partition_key=key,
                run_config=live_run_config(root),
                tags={"trading/landing_segment": stem},
            )
        )
    cursor = {name: stem for name, stem in cursor.items() if stem}
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(cursor))
    reason = f"waiting: {', '.join(waiting)}" if waiting else f"no new sealed segments in {root}"
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(cursor))


defs = dg.Definitions(
    jobs=[live_trades_ingest],
    sensors=[live_trades_landing],
    resources={"landing": LandingResource()},
)
