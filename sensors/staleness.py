"""The staleness sensor: watches the sidecar's heartbeat and the online rows' age, and launches a
repair when serving data goes stale.

Each tick probes ``GET {sidecar}/health`` (no answer counts as stale) and reads every symbol's
newest online vector through Feast, then hands both to the pure checks in
``trading_assets.lib.feature_store.staleness``. A stale symbol whose silver partition for today
holds trades newer than its online row gets one ``staleness_repair`` run (silver → bars_1s →
features → online_features); the cause goes into the run's tags, the sensor's log and an
``online_features`` observation on the asset's page. When silver has nothing newer, a rebuild
cannot help (the live landing itself has stopped) and the sensor says so instead.

It never stacks repairs: while any repair run is queued or running it only says so, and its
cursor (plus a run key per cooldown period) keeps a symbol from being repaired again within the
cooldown.
"""

from __future__ import annotations

import time

import dagster as dg
import httpx
from pydantic import Field

from trading_assets.defs.ingest.partitions import partition_key, trade_instruments
from trading_assets.lib.asset_names import ONLINE_FEATURES, SILVER_TRADES, STALENESS_REPAIR_JOB
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.online_reader import OnlineFeatureReader
from trading_assets.lib.feature_store.staleness import (
    DEFAULT_REPAIR_COOLDOWN_S,
    NS_PER_S,
    Assessment,
    Heartbeat,
    RepairCursor,
    assess,
    configured_max_age_s,
    configured_sidecar_url,
    parse_health,
    plan_repairs,
    repair_run_key,
    unreachable,
    utc_day,
    utc_text,
)
from trading_assets.resources.feast import FeastResource

SENSOR_NAME = "online_staleness"
CHECK_INTERVAL_S = 60  # half the default threshold: a stale store is noticed within a minute
TAG_PREFIX = "trading/"
TAG_VALUE_MAX = 1_000  # run tags are shown whole in the UI; a long cause is cut, never dropped
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class StalenessResource(dg.ConfigurableResource):
    """Where the sidecar is and how stale is too stale."""

    sidecar_url: str = Field(
        default_factory=configured_sidecar_url,
        description="The sidecar's base URL (default: SIDECAR_URL or http://127.0.0.1:8700).",
    )
    max_age_s: float = Field(
        default_factory=configured_max_age_s,
        description="Online rows older than this are stale (default: STALENESS_MAX_AGE_S or the "
        "feature views' TTL).",
    )
    repair_cooldown_s: float = Field(
        default=DEFAULT_REPAIR_COOLDOWN_S, description="At most one repair per symbol this often."
    )
    timeout_s: float = Field(default=2.0, description="Heartbeat probe timeout.")
    feature_service: str = Field(
        # The batch views only: book features are live-only, so no repair could refresh them.
        default=spec.TRAINING_SERVICE,
        description="Feature service whose online vector's event time is judged.",
    )

    def heartbeat(self) -> Heartbeat:
        """Probe ``/health``; any transport error means unreachable."""
        try:
            response = httpx.get(f"{self.sidecar_url.rstrip('/')}/health", timeout=self.timeout_s)
        except httpx.HTTPError as error:
            return unreachable(error)
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        return parse_health(response.status_code, body)


def online_event_times(
    feast: FeastResource, service: str, symbols: list[str]
) -> dict[str, int | None]:
    """Each symbol's online vector event time (ns; None when the store holds no row)."""
    # The sidecar's reader: the same view-by-view read and "as old as its stalest view" rule.
    reader = OnlineFeatureReader(feast.store(), service)
    reads = {symbol: reader.read(symbol) for symbol in symbols}
    return {symbol: None if r is None else r.event_time_ns for symbol, r in reads.items()}


def _tag(value: str) -> str:
    return value if len(value) <= TAG_VALUE_MAX else value[: TAG_VALUE_MAX - 1] + "…"


def repair_tags(assessment: Assessment, symbol: str) -> dict[str, str]:
    """What a repair run shows about why it was launched."""
    ages = assessment.ages()
    age = ages.get(symbol)
    return {
        f"{TAG_PREFIX}repair_cause": _tag(assessment.cause()),
        f"{TAG_PREFIX}stale_symbols": ",".join(assessment.stale_symbols),
        f"{TAG_PREFIX}heartbeat": _tag(assessment.heartbeat.detail),
        f"{TAG_PREFIX}online_age_s": "no row" if age is None else f"{age:.0f}",
        f"{TAG_PREFIX}detected_at": utc_text(assessment.now_ns),
    }


def repair_observation(assessment: Assessment, partitions: list[str]) -> dg.AssetObservation:
    """The cause on online_features' page, next to its materializations."""
    return dg.AssetObservation(
        asset_key=dg.AssetKey(ONLINE_FEATURES),
        description=f"stale: {assessment.cause()}",
        metadata={
            "stale_cause": dg.MetadataValue.text(assessment.cause()),
            "heartbeat": dg.MetadataValue.text(assessment.heartbeat.detail),
            "online_age_s": dg.MetadataValue.json(assessment.ages()),
            "max_age_s": dg.MetadataValue.float(assessment.max_age_s),
            "repair_partitions": dg.MetadataValue.json(partitions),
        },
    )


def silver_watermark_ns(instance: dg.DagsterInstance, key: str) -> int | None:
    """The newest trade time (ns) of silver's partition ``key``, from its latest materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(SILVER_TRADES), asset_partitions=[key]),
        limit=1,
    ).records
    materialization = records[0].asset_materialization if records else None
    value = None if materialization is None else materialization.metadata.get("watermark")
    if not isinstance(value, dg.TimestampMetadataValue):
        return None  # never materialized, or materialized empty (no rows, no watermark)
    return int(value.value * NS_PER_S)


def _repairs_in_progress(instance: dg.DagsterInstance) -> list[str]:
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=STALENESS_REPAIR_JOB, statuses=IN_PROGRESS), limit=20
    )
    return [
        f"{r.dagster_run.run_id[:8]} ({r.dagster_run.tags.get('dagster/partition', '?')})"
        for r in records
    ]


@dg.sensor(
    name=SENSOR_NAME,
    job_name=STALENESS_REPAIR_JOB,
    minimum_interval_seconds=CHECK_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sidecar heartbeat and online feature age → a staleness_repair run per stale symbol "
        "(today's bars_1s + features from silver, then online_features)."
    ),
)
def online_staleness(
    context: dg.SensorEvaluationContext, feast: FeastResource, staleness: StalenessResource
) -> dg.SensorResult:
    """Launch a repair for each stale symbol, or say why not."""
    now_ns = time.time_ns()
    cursor = RepairCursor.parse(context.cursor)
    symbols = list(trade_instruments())  # the only symbols a repair's partitions can rebuild
    heartbeat = staleness.heartbeat()
    try:
        event_times = online_event_times(feast, staleness.feature_service, symbols)
    except Exception as error:  # e.g. no registry yet: nothing a repair of features could fix
        reason = f"cannot read the online store ({type(error).__name__}: {error}); heartbeat "
        reason += heartbeat.detail
        context.log.warning(reason)
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dump())
    assessment = assess(heartbeat, event_times, now_ns, staleness.max_age_s)
    if not assessment.stale:
        reason = f"fresh: {assessment.summary()}"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dump())

    context.log.warning(f"stale: {assessment.cause()}")
    running = _repairs_in_progress(context.instance)
    if running:
        reason = f"stale ({assessment.cause()}), but a repair is in progress: {', '.join(running)}"
        context.log.info(reason)
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dump())

    day = utc_day(now_ns)
    silver = {
        symbol: silver_watermark_ns(context.instance, str(partition_key(day, symbol)))
        for symbol in assessment.stale_symbols
    }
    plan = plan_repairs(
        assessment.stale_symbols,
        cursor,
        now_ns,
        staleness.repair_cooldown_s,
        online_event_ns=event_times,
        silver_watermark_ns=silver,
    )
    if plan.reasons():
        context.log.info(f"not repaired: {'; '.join(plan.reasons())}")
    if not plan.due:
        reason = f"stale ({assessment.cause()}), but no repair can help now: "
        reason += "; ".join(plan.reasons())
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dump())

    requests = []
    for symbol in plan.due:
        key = partition_key(day, symbol)
        requests.append(
            dg.RunRequest(
                run_key=repair_run_key(str(key), now_ns, staleness.repair_cooldown_s),
                partition_key=key,
                tags=repair_tags(assessment, symbol),
            )
        )
    partitions = [str(request.partition_key) for request in requests]
    context.log.warning(f"requesting staleness_repair for {', '.join(partitions)}")
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor.with_requests(plan.due, now_ns).dump(),
        asset_events=[repair_observation(assessment, partitions)],
    )


defs = dg.Definitions(
    sensors=[online_staleness],
    resources={"staleness": StalenessResource()},
)
