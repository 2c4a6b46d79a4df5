"""Live pickup: a sensor turns newly sealed landed trade segments into bronze + silver runs.

It lists the landing location (``LandingResource``): the sidecar's landing folder locally, in
production the ``s3://`` prefix the sidecar's shipper uploads each sealed segment to; the runs
read the segments from the same location.

Each run rebuilds each of its day × symbol bronze partitions from every sealed segment of that
day and replaces it in one Iceberg commit; silver follows in the same run and drops repeated trade
ids to quarantine. A run is therefore idempotent: running it twice, or after more segments sealed,
never duplicates a trade. A partition is picked up when a sealed segment is waiting: newer than
the newest one the sensor already requested (its cursor, per partition) and than the newest one
bronze recorded as ingested (``last_segment``, which a run that found more segments sealed than it
was asked for has already taken in). The run key names each partition's segment, so each state is
requested once. A partition with a live run queued or in progress waits for it. Days whose bulk
file is stored (``raw_trades`` materialized) are left to the bulk path, which is authoritative
and replaces the live rows.

One run covers every symbol of a day that has a segment waiting, as a partition key range over
the symbol dimension (a run per symbol, each loading the code location, flooded the Runs page:
the sidecar seals a segment per symbol about every 20 s). Materializations and check evaluations
are still recorded per partition, each with its own metadata. A range spans every symbol between
its two ends in the dimension's order, so a symbol in between that cannot join (nothing waiting, a
run in progress) splits the day into more runs. A partition whose last pickup stopped partway
(bronze newer than features: a failed step or blocking check) is picked up in a run of its own,
so that a defect in one symbol does not hold back the other symbols' bars.

The same run goes on to ``bars_1s`` and ``features`` of its partitions. Live model metrics and the
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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from trading_assets.defs.features.assets import features
from trading_assets.defs.ingest.partitions import (
    partition_key,
    trade_instruments,
    trade_partitions,
)
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import LAST_SEGMENT, bars_1s, bronze_trades, silver_trades
from trading_assets.defs.lakehouse.checks import (
    no_duplicate_trade_ids,
    no_price_spikes,
    time_never_goes_backwards,
    trade_id_gaps,
)
from trading_assets.lib.lakehouse.landing import newest_sealed_stems
from trading_assets.resources.landing import LandingResource

LIVE_JOB_NAME = "live_trades_ingest"
PICKUP_INTERVAL_S = 30  # segments seal every ~20 s, so a trade reaches silver within a minute
PICKUP_TAG = "trading/pickup"
PICKUP_LIVE = "live"
DAY_TAG = "trading/day"
SYMBOLS_TAG = "trading/symbols"
SEGMENT_TAG_PREFIX = "trading/segment."


def segment_tag(instrument: str) -> str:
    """``trading/segment.BINANCE.BTCUSDT``: the instrument spelled as a tag key allows (letters,
    digits, ``_``, ``-`` and ``.``; ``KRAKEN:BTC/USD`` → ``KRAKEN.BTC-USD``)."""
    return SEGMENT_TAG_PREFIX + instrument.replace(":", ".").replace("/", "-")


_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


live_trades_ingest = dg.define_asset_job(
    LIVE_JOB_NAME,
    # rows_reconcile counts the bulk zip's rows, which a live day does not have yet; bronze's
    # rows are the landed records by construction.
    selection=dg.AssetSelection.assets(
        bronze_trades, silver_trades, bars_1s, features, "cross_features"
    ).without_checks()
    | dg.AssetSelection.checks(
        no_duplicate_trade_ids, time_never_goes_backwards, trade_id_gaps, no_price_spikes
    ),
    # A day that has ended seals no further segment, so the sensor would not ask again.
    op_retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
    description=(
        "Landed live trades of one day's symbols (a partition or a range of them) → bronze → "
        "silver (+ quarantine) → bars_1s → features (+ cross features)."
    ),
)


def live_run_config(landing_root: str) -> dict:
    """Run config that points bronze_trades at the landing location the sensor looked at."""
    return {"ops": {bronze_trades.op.name: {"config": {"landing_root": landing_root}}}}


def run_partition_keys(tags: Mapping[str, str]) -> list[str]:
    """The partitions a run covers, from its tags: its partition or each of its range."""
    if PARTITION_NAME_TAG in tags:
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not (start and end):
        return []
    try:
        keys = trade_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
    except dg.DagsterInvalidInvocationError:
        return [start, end]  # a symbol the definitions no longer offer: its ends, at least
    return [str(key) for key in keys]


def _partitions_in_progress(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=LIVE_JOB_NAME, statuses=_IN_PROGRESS)
    )
    return {key for run in runs for key in run_partition_keys(run.dagster_run.tags)}


@dataclass(frozen=True)
class _PartitionRecord:
    """What the instance holds about one partition, as far as a pickup is concerned."""

    bulk_stored: bool
    ingested_segment: str  # the newest segment bronze holds ("" when none)
    stopped_partway: bool  # bronze is newer than features: the last pickup did not get through


def _partition_record(instance: dg.DagsterInstance, key: str) -> _PartitionRecord:
    def newest(asset_key: dg.AssetKey) -> dg.EventLogRecord | None:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[key]), limit=1
        ).records
        return records[0] if records else None

    if newest(raw_trades.key) is not None:
        return _PartitionRecord(bulk_stored=True, ingested_segment="", stopped_partway=False)
    bronze, gold = newest(bronze_trades.key), newest(features.key)
    if bronze is None:
        return _PartitionRecord(bulk_stored=False, ingested_segment="", stopped_partway=False)
    materialization = bronze.asset_materialization
    segment = materialization.metadata.get(LAST_SEGMENT) if materialization else None
    return _PartitionRecord(
        bulk_stored=False,
        ingested_segment=str(segment.value) if segment is not None else "",
        stopped_partway=gold is None or gold.storage_id < bronze.storage_id,
    )


def pickup_groups(
    symbols: Sequence[str], waiting: Mapping[str, str], alone: Collection[str]
) -> list[dict[str, str]]:
    """One day's waiting symbols (symbol → segment) as the groups to run together.

    A group is a run of neighbours in ``symbols`` (the symbol dimension's order), since a range
    covers every symbol between its ends; a symbol in ``alone`` gets a group of its own.
    """
    groups: list[dict[str, str]] = [{}]
    for symbol in symbols:
        if symbol not in waiting or symbol in alone:
            groups.append({})
        if symbol in waiting:
            groups[-1][symbol] = waiting[symbol]
        if symbol in alone:
            groups.append({})
    return [group for group in groups if group]


def live_run_request(day: dt.date, segments: Mapping[str, str], root: str) -> dg.RunRequest:
    """One run for ``segments`` (symbol → newest sealed segment, neighbours in the symbol
    dimension's order) of ``day``, tagged for the Runs page: ``trading/pickup=live``, the day,
    the symbols and each symbol's segment."""
    symbols = list(segments)
    tags = {
        PICKUP_TAG: PICKUP_LIVE,
        DAY_TAG: day.isoformat(),
        SYMBOLS_TAG: ",".join(symbols),
        **{segment_tag(instrument): stem for instrument, stem in segments.items()},
    }
    run_key = f"{day.isoformat()}|" + ",".join(f"{s}@{stem}" for s, stem in segments.items())
    first, last = partition_key(day, symbols[0]), partition_key(day, symbols[-1])
    if first == last:
        return dg.RunRequest(
            run_key=run_key, partition_key=first, run_config=live_run_config(root), tags=tags
        )
    range_tags = {
        ASSET_PARTITION_RANGE_START_TAG: str(first),
        ASSET_PARTITION_RANGE_END_TAG: str(last),
    }
    return dg.RunRequest(
        run_key=run_key, run_config=live_run_config(root), tags={**tags, **range_tags}
    )


@dg.sensor(
    name="live_trades_landing",
    job=live_trades_ingest,
    minimum_interval_seconds=PICKUP_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Sealed landed trade segments → bronze, silver, bars_1s and features of their day × "
        "symbol, one run per day for the symbols with a segment waiting (Runs page filter: tag "
        "trading/pickup=live)."
    ),
)
def live_trades_landing(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> dg.SensorResult:
    """Request one run per day for the symbols whose newest sealed segment waits.

    The Runs page finds these runs by tag (Filter → Tag): ``trading/pickup=live`` for every
    live pickup, ``trading/day=2024-03-01`` for one day's,
    ``trading/symbols=BINANCE:BTCUSDT,BINANCE:ETHUSDT``
    for the instruments a run covers (as listed on the run), and
    ``trading/segment.BINANCE.BTCUSDT=<stem>`` (see :func:`segment_tag`) for the run requested for
    that sealed segment of the instrument.
    """
    root = landing.location()
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    busy = _partitions_in_progress(context.instance)
    cursor: dict[str, str] = {}
    ready: dict[dt.date, dict[str, str]] = {}
    alone: dict[dt.date, set[str]] = {}
    held: list[str] = []
    for (day, symbol), stem in sorted(newest_sealed_stems(root).items()):
        key = partition_key(day, symbol)
        name = str(key)
        done = requested.get(name, "")
        cursor[name] = done  # partitions whose folders are gone drop out of the cursor
        if stem <= done:
            continue
        # A day the partitions do not offer yet (or a symbol not traded here) waits.
        if not trade_partitions.has_partition_key(key) or name in busy:
            held.append(name)
            continue
        cursor[name] = stem
        record = _partition_record(context.instance, name)
        if record.bulk_stored or stem <= record.ingested_segment:
            continue
        ready.setdefault(day, {})[symbol] = stem
        if record.stopped_partway:
            alone.setdefault(day, set()).add(symbol)
    run_requests = [
        live_run_request(day, group, root)
        for day, waiting in sorted(ready.items())
        for group in pickup_groups(trade_instruments(), waiting, alone.get(day, set()))
    ]
    cursor = {name: stem for name, stem in cursor.items() if stem}
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(cursor))
    reason = f"waiting: {', '.join(held)}" if held else f"no new sealed segments in {root}"
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(cursor))


defs = dg.Definitions(
    jobs=[live_trades_ingest],
    sensors=[live_trades_landing],
    resources={"landing": LandingResource()},
)
