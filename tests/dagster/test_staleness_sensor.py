"""The staleness sensor against real parts: the sidecar's own API serving /health, a Feast sqlite
online store written through the sidecar's writer, a real Dagster instance; and the repair job
run on a simulator day in a tmp lakehouse, after which the online store is fresh again."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from sensors import sensor_definitions
from sensors.staleness import (
    SENSOR_NAME,
    StalenessResource,
    online_event_times,
    online_staleness,
)
from streaming.api import PredictionApi, PredictionHub, Readiness
from streaming.metrics import SidecarMetrics
from streaming.online import OnlineFeatureWriter
from streaming.simulator.server import run_simulator_in_thread
from tests.services import free_port
from trading_assets.defs.features.assets import feast_registry, features, online_features
from trading_assets.defs.features.repair import REPAIR_JOB_NAME, staleness_repair
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
from trading_assets.defs.models.backtest import backtest, backtest_job
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.gold import read_gold
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.feature_store.staleness import NS_PER_S, Heartbeat, assess
from trading_assets.lib.features import FeatureRow
from trading_assets.resources import (
    BinanceBulkResource,
    FeastResource,
    IcebergCatalogResource,
    MlflowResource,
)

BTC, ETH = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"
INSTRUMENTS = [BTC, ETH]  # the default partitions' instruments
BATCH_FEATURES = spec.group_features("price") + spec.group_features("flow")
MAX_AGE_S = 120.0
HOUR_S = 3_600
TRADES_PER_DAY = 5_000
SEED = 11
SIM_DAY = dt.date(2024, 3, 1)
SIM_SYMBOL = "BTCUSDT"  # as the simulator names it
SIM_INSTRUMENT = f"BINANCE:{SIM_SYMBOL}"


@contextlib.contextmanager
def sidecar_api() -> Iterator[str]:
    """The sidecar's real HTTP API on a free port, on its own event loop thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sidecar-api", daemon=True)
    thread.start()
    metrics = SidecarMetrics()
    api = PredictionApi(PredictionHub(metrics), metrics, lambda: Readiness(True))
    asyncio.run_coroutine_threadsafe(api.start(), loop).result(60)
    try:
        yield api.url
    finally:
        asyncio.run_coroutine_threadsafe(api.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()


@pytest.fixture(scope="module")
def healthy_url() -> Iterator[str]:
    with sidecar_api() as url:
        yield url


@pytest.fixture
def feast(tmp_path) -> FeastResource:
    resource = FeastResource.local(tmp_path / "feast")
    apply_definitions(resource.store(), load_definitions())
    return resource


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def write_online(feast: FeastResource, ages_s: dict[str, float]) -> None:
    """One price + flow row per instrument through the sidecar's writer, ``age`` seconds old."""
    now_us = time.time_ns() // 1_000
    writer = OnlineFeatureWriter(feast.store(), views=spec.TRADE_GROUPS, flush_every_s=60)
    for i, (instrument, age) in enumerate(ages_s.items()):
        values: dict[str, float | None] = {
            name: 1.0 + i + j / 7 for j, name in enumerate(BATCH_FEATURES)
        }
        writer.submit(FeatureRow(instrument, now_us - int(age * 1_000_000), values))
    assert writer.close(60)


def record_silver(instance: dg.DagsterInstance, ages_s: dict[str, float]) -> None:
    """Today's silver partitions as the live pickup leaves them: newest trade ``age`` s ago."""
    now_s = time.time()
    for instrument, age in ages_s.items():
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=silver_trades.key,
                partition=today_key(instrument),
                metadata={"watermark": dg.MetadataValue.timestamp(now_s - age)},
            )
        )


def evaluate(
    instance: dg.DagsterInstance, feast: FeastResource, url: str, cursor: str | None = None
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "feast": feast,
            "staleness": StalenessResource(sidecar_url=url, max_age_s=MAX_AGE_S, timeout_s=5),
        },
    )
    result = online_staleness(context)
    assert isinstance(result, dg.SensorResult)
    return result


def today_key(instrument: str) -> str:
    return f"{dt.datetime.now(dt.UTC).date().isoformat()}|{instrument}"


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound and released: nothing listens there


def test_fresh_rows_and_a_live_sidecar_skip_with_the_ages(instance, feast, healthy_url):
    write_online(feast, {BTC: 2, ETH: 5})

    result = evaluate(instance, feast, healthy_url)

    assert not result.run_requests
    assert result.skip_reason is not None
    reason = result.skip_reason.skip_message or ""
    assert reason.startswith("fresh: heartbeat ok (up ")
    assert BTC in reason and ETH in reason and "max 120 s" in reason
    assert not result.asset_events


def test_stale_online_rows_request_a_repair_of_the_stale_instruments(instance, feast, healthy_url):
    write_online(feast, {BTC: 2, ETH: HOUR_S})
    record_silver(instance, {BTC: 1, ETH: 20})

    result = evaluate(instance, feast, healthy_url)

    (request,) = result.run_requests or []
    assert request.partition_key == today_key(ETH)
    assert request.job_name in (None, REPAIR_JOB_NAME)
    assert request.tags["trading/stale_symbols"] == ETH
    assert request.tags["trading/repair_cause"].startswith(f"online rows stale: {ETH} is 36")
    assert request.tags["trading/heartbeat"].startswith("ok")
    assert 3_590 <= float(request.tags["trading/online_age_s"]) <= 3_700
    (observation,) = result.asset_events
    assert isinstance(observation, dg.AssetObservation)
    assert observation.asset_key == online_features.key
    assert observation.metadata["repair_partitions"].value == [today_key(ETH)]
    assert f"{ETH} is 36" in str(observation.metadata["stale_cause"].value)


def test_the_same_stale_instrument_is_not_repaired_again_within_the_cooldown(
    instance, feast, healthy_url
):
    write_online(feast, {BTC: HOUR_S, ETH: HOUR_S})
    record_silver(instance, {BTC: 20, ETH: 20})
    first = evaluate(instance, feast, healthy_url)

    second = evaluate(instance, feast, healthy_url, cursor=first.cursor)

    assert {r.partition_key for r in first.run_requests or []} == {
        today_key(s) for s in INSTRUMENTS
    }
    assert not second.run_requests
    reason = (second.skip_reason.skip_message if second.skip_reason else None) or ""
    assert reason and f"{BTC} repaired recently, next after" in reason
    assert f"{ETH} repaired recently" in reason


def test_an_unreachable_sidecar_repairs_every_instrument_and_says_why(instance, feast):
    # The sidecar went down after landing trades that silver holds but the store does not yet.
    write_online(feast, {BTC: 40, ETH: 50})
    record_silver(instance, {BTC: 10, ETH: 10})

    result = evaluate(instance, feast, unreachable_url())

    requests = result.run_requests or []
    assert sorted(str(r.partition_key) for r in requests) == [today_key(s) for s in INSTRUMENTS]
    for request in requests:
        assert request.tags["trading/heartbeat"].startswith("unreachable (ConnectError")
        assert request.tags["trading/repair_cause"].startswith("sidecar heartbeat unreachable")
        assert request.tags["trading/stale_symbols"] == f"{BTC},{ETH}"
    (observation,) = result.asset_events
    assert "unreachable" in str(observation.metadata["heartbeat"].value)


def test_no_repair_when_silver_has_nothing_newer_and_the_reason_says_so(
    instance, feast, healthy_url
):
    write_online(feast, {BTC: HOUR_S, ETH: HOUR_S})
    record_silver(instance, {BTC: HOUR_S + 60})  # ETH: no silver today at all

    result = evaluate(instance, feast, healthy_url)

    assert not result.run_requests
    reason = (result.skip_reason.skip_message if result.skip_reason else None) or ""
    assert reason.startswith(f"stale (online rows stale: {BTC} is 36")
    assert f"{BTC} has nothing in silver newer than its online row" in reason
    assert f"{ETH} has no silver rows today" in reason
    assert result.cursor == '{"requested_ns": {}}'


def test_no_second_repair_while_one_is_in_progress(instance, feast, healthy_url):
    write_online(feast, {BTC: HOUR_S, ETH: HOUR_S})
    running = dg.DagsterRun(
        job_name=REPAIR_JOB_NAME,
        run_id="0123456789abcdef",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": today_key(BTC)},
    )
    instance.add_run(running)

    result = evaluate(instance, feast, healthy_url, cursor=None)

    assert not result.run_requests
    reason = (result.skip_reason.skip_message if result.skip_reason else None) or ""
    assert reason and "a repair is in progress: 01234567" in reason
    assert f"{ETH} is 36" in reason  # the cause is still reported
    assert result.cursor == '{"requested_ns": {}}'  # nothing was requested, nothing remembered


def test_the_sensor_is_registered_and_runs_by_default(tmp_path):
    # The sensors package's merge, which trading_assets.definitions adds to the code location;
    # the sensors target their jobs by name (the repair job, the backtests'), and defs/ defines
    # them.
    definitions = dg.Definitions.merge(
        sensor_definitions(),
        dg.Definitions(
            assets=[bars_1s, features, feast_registry, online_features, backtest],
            jobs=[staleness_repair, backtest_job],
            resources={
                "iceberg": IcebergCatalogResource.local(tmp_path / "iceberg"),
                "feast": FeastResource.local(tmp_path / "feast"),
                "mlflow": MlflowResource.local(tmp_path / "mlflow", tmp_path / "models"),
            },
        ),
    )

    sensor = definitions.resolve_sensor_def(SENSOR_NAME)

    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == REPAIR_JOB_NAME
    job = definitions.resolve_job_def(REPAIR_JOB_NAME)
    assert {node.name for node in job.nodes} == {"bars_1s", "features", "online_features"}
    # today's day × instrument partition of the stale instrument
    assert job.partitions_def is not None


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with run_simulator_in_thread(
        symbols=[SIM_SYMBOL], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        yield sim.http_url


def only(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def test_the_repair_job_leaves_the_online_store_fresh(tmp_path: Path, simulator, instance):
    resources = {
        "iceberg": IcebergCatalogResource.local(tmp_path / "iceberg"),
        "binance_bulk": BinanceBulkResource(base_url=simulator),
        "feast": FeastResource.local(tmp_path / "feast"),
    }
    key = f"{SIM_DAY.isoformat()}|{SIM_INSTRUMENT}"
    silver = dg.materialize(
        [raw_trades, bronze_trades, silver_trades],
        partition_key=key,
        resources=resources,
        instance=instance,
    )
    registry = dg.materialize([feast_registry], resources=resources, instance=instance)
    # What the online store held before: a row from the first minutes of the day, hours stale.
    early_us = int(dt.datetime(2024, 3, 1, 0, 5, tzinfo=dt.UTC).timestamp()) * 1_000_000
    writer = OnlineFeatureWriter(resources["feast"].store(), views=spec.TRADE_GROUPS)
    writer.submit(FeatureRow(SIM_INSTRUMENT, early_us, dict.fromkeys(BATCH_FEATURES, 0.5)))
    assert writer.close(60)
    definitions = dg.Definitions(
        assets=[
            raw_trades,
            bronze_trades,
            silver_trades,
            bars_1s,
            features,
            feast_registry,
            online_features,
        ],
        jobs=[staleness_repair],
        resources=resources,
    )

    repair = definitions.resolve_job_def(REPAIR_JOB_NAME).execute_in_process(
        partition_key=key, instance=instance
    )

    assert silver.success and registry.success and repair.success
    gold = read_gold(resources["iceberg"].lakehouse(), SIM_INSTRUMENT, SIM_DAY)
    newest = gold["event_timestamp"].max()
    assert isinstance(newest, dt.datetime)
    newest_ns = int(newest.timestamp()) * NS_PER_S
    (event_ns,) = online_event_times(
        resources["feast"], spec.TRAINING_SERVICE, [SIM_INSTRUMENT]
    ).values()
    assert event_ns == newest_ns > early_us * 1_000
    # Fresh by the sensor's own check at the data's clock; the old row would have been hours stale.
    healthy = Heartbeat(True, "ok")
    assert not assess(healthy, {SIM_INSTRUMENT: event_ns}, newest_ns + NS_PER_S, MAX_AGE_S).stale
    assert assess(healthy, {SIM_INSTRUMENT: early_us * 1_000}, newest_ns, MAX_AGE_S).stale
    # Every step records its event-time watermark, so lineage shows where freshness breaks.
    silver_meta = only(silver, "silver_trades")
    bars_meta, gold_meta = only(repair, "bars_1s"), only(repair, "features")
    online_meta = only(repair, "online_features")
    assert online_meta["watermark"] == gold_meta["watermark"] == newest.timestamp()
    # The newest trade falls in the newest 1 s bar; features end at or after that bar's end.
    assert bars_meta["watermark"] <= silver_meta["watermark"] < bars_meta["watermark"] + 1
    assert gold_meta["watermark"] >= bars_meta["watermark"] + 1
    assert online_meta["symbols_served"] == [SIM_INSTRUMENT]
