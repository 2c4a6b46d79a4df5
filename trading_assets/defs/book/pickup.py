"""Book pickup: a sensor turns newly sealed landed book segments into bronze_book → silver_book →
depth_features runs, one per day × instrument.

A book day is much bigger than its trades (a diff every 100 ms), and nothing live reads silver's
book, so it is picked up every few minutes rather than with every trade segment. Each run rebuilds
the partition from every sealed segment of its day (idempotent), so a pickup after midnight
completes the day before. A partition with a run queued or in progress waits for it. The runs
carry ``trading/pickup=book`` for the Runs page.
"""

import json

import dagster as dg

from trading_assets.defs.book.assets import bronze_book, depth_features, silver_book
from trading_assets.defs.ingest.partitions import partition_key, trade_partitions
from trading_assets.lib.lakehouse.landing import newest_sealed_stems
from trading_assets.lib.lakehouse.landing_layout import BOOK_SNAPSHOTS_KIND, BOOK_UPDATES_KIND
from trading_assets.resources.landing import LandingResource

BOOK_JOB_NAME = "book_ingest"
BOOK_PICKUP_INTERVAL_S = 300
PICKUP_TAG = "trading/pickup"
PICKUP_BOOK = "book"

book_ingest = dg.define_asset_job(
    BOOK_JOB_NAME,
    selection=dg.AssetSelection.assets(bronze_book, silver_book, depth_features),
    partitions_def=trade_partitions,
    description=(
        "Landed L2 book lines of one day × instrument → bronze → silver (checked) → depth features."
    ),
)

_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _busy(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=BOOK_JOB_NAME, statuses=_IN_PROGRESS)
    )
    return {run.dagster_run.tags.get("dagster/partition", "") for run in runs}


@dg.sensor(
    name="live_book_landing",
    job=book_ingest,
    minimum_interval_seconds=BOOK_PICKUP_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sealed landed L2 book segments → bronze_book, silver_book and depth_features of their "
        "day × instrument (Runs page filter: tag trading/pickup=book)."
    ),
)
def live_book_landing(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> dg.SensorResult:
    """Request a run for every partition whose newest sealed book segment is new."""
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    busy = _busy(context.instance)
    kinds = (BOOK_UPDATES_KIND, BOOK_SNAPSHOTS_KIND)
    run_requests = []
    for (day, instrument), stem in sorted(newest_sealed_stems(landing.location(), kinds).items()):
        key = partition_key(day, instrument)
        name = str(key)
        if stem <= requested.get(name, "") or name in busy:
            continue
        if not trade_partitions.has_partition_key(key):
            continue
        requested[name] = stem
        run_requests.append(
            dg.RunRequest(
                run_key=f"{name}@{stem}",
                partition_key=key,
                tags={PICKUP_TAG: PICKUP_BOOK},
            )
        )
    if not run_requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new sealed book segments"), cursor=json.dumps(requested)
        )
    return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(requested))


defs = dg.Definitions(jobs=[book_ingest], sensors=[live_book_landing])
