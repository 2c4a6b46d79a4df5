"""Live pickup runs: one run per day for every instrument with a sealed segment waiting, tagged for
the Runs page, recording each partition it covers as its own materialization and check evaluation.

Real parts: segments landed by ``LandingWriter``, the sensor on a real Dagster instance, the
``live_trades_ingest`` job it targets executed on that instance against a tmp Iceberg catalog
and Feast export, and the automation conditions evaluated against what the run recorded.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.features.assets import features
from trading_assets.defs.features.cross import cross_features
from trading_assets.defs.ingest.landing import (
    LIVE_JOB_NAME,
    live_trades_ingest,
    pickup_groups,
    run_partition_keys,
)
from trading_assets.defs.lakehouse import checks
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
from trading_assets.lib.lakehouse.pipeline import read_silver
from trading_assets.resources import FeastResource, IcebergCatalogResource

from .live_pickup import DAY, Sensor, land, newest_day, requested, trade

LIVE_CHECKS = [
    checks.no_duplicate_trade_ids,
    checks.time_never_goes_backwards,
    checks.trade_id_gaps,
    checks.no_price_spikes,
]
LIVE_ASSETS = [bronze_trades, silver_trades, bars_1s, features, cross_features]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
IN_PROGRESS = dg.DagsterRunStatus.STARTED


BTC, ETH = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"  # the instruments of trade()'s symbols


def key(day: dt.date, instrument: str) -> str:
    return f"{day.isoformat()}|{instrument}"


@pytest.fixture
def landing(tmp_path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def sensor(landing) -> Sensor:
    return Sensor(dg.DagsterInstance.ephemeral(), landing)


def run_live_job(
    request: dg.RunRequest, tmp_path: Path, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """What the daemon launches for the request: the job the sensor targets, with its tags."""
    definitions = dg.Definitions(
        assets=LIVE_ASSETS,
        asset_checks=LIVE_CHECKS,
        jobs=[live_trades_ingest],
        resources={
            "iceberg": IcebergCatalogResource.local(tmp_path / "lake"),
            "feast": FeastResource.local(tmp_path / "feast"),
        },
    )
    return definitions.resolve_job_def(LIVE_JOB_NAME).execute_in_process(
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
    )


def ingest_bronze_and_silver(request: dg.RunRequest, tmp_path: Path, instance: dg.DagsterInstance):
    """A pickup that stopped after silver (as one whose blocking check failed does)."""
    result = dg.materialize(
        [bronze_trades, silver_trades],
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        resources={"iceberg": IcebergCatalogResource.local(tmp_path / "lake")},
        instance=instance,
    )
    assert result.success


def test_instruments_with_a_segment_waiting_share_one_run_tagged_for_the_runs_page(landing, sensor):
    btc = land(landing, [trade(i) for i in range(1, 41)], [trade(i) for i in range(41, 61)])
    eth = land(landing, [trade(i, "ETHUSDT") for i in range(1, 31)])

    result = sensor.tick()

    (request,) = result.run_requests or []
    btc_key, eth_key = key(DAY, BTC), key(DAY, ETH)
    assert set(requested(result)) == {btc_key, eth_key}
    assert request.partition_key is None
    assert request.tags == {
        "trading/pickup": "live",
        "trading/day": DAY.isoformat(),
        "trading/symbols": f"{BTC},{ETH}",
        "trading/segment.BINANCE.BTCUSDT": btc[-1],
        "trading/segment.BINANCE.ETHUSDT": eth[-1],
        RANGE_START: btc_key,
        RANGE_END: eth_key,
    }
    assert request.run_key == f"{DAY.isoformat()}|{BTC}@{btc[-1]},{ETH}@{eth[-1]}"


def test_the_run_records_each_partition_it_covers_once_and_automation_follows(
    tmp_path, landing, sensor
):
    day = newest_day()  # eager automation follows the newest partition
    counts = {"BTCUSDT": 150, "ETHUSDT": 90}  # by the symbol the trades are landed under
    for symbol, count in counts.items():
        land(landing, [trade(i, symbol, day) for i in range(1, count + 1)])
    automation_before = dg.evaluate_automation_conditions(
        defs=lazy_defs(), instance=sensor.instance
    )

    (request,) = sensor.tick().run_requests or []
    run = run_live_job(request, tmp_path, sensor.instance)
    automation_after = dg.evaluate_automation_conditions(
        defs=lazy_defs(), instance=sensor.instance, cursor=automation_before.cursor
    )

    assert run.success
    lake = IcebergCatalogResource.local(tmp_path / "lake").lakehouse()
    for symbol, count in counts.items():
        ids = read_silver(lake, f"BINANCE:{symbol}", day)["trade_id"].to_list()
        assert ids == list(range(1, count + 1))  # every landed trade, none twice
    partitions = {key(day, f"BINANCE:{symbol}"): symbol for symbol in counts}
    for asset in LIVE_ASSETS:
        events = run.asset_materializations_for_node(asset.op.name)
        assert sorted(str(event.partition) for event in events) == sorted(partitions)
    # Each partition's materialization carries its own rows and watermark.
    for event in run.asset_materializations_for_node("silver_trades"):
        symbol = partitions[str(event.partition)]
        last = trade(counts[symbol], symbol, day).trade_ns // 1000
        assert event.metadata["rows"].value == counts[symbol]
        assert event.metadata["watermark"].value == last / 1e6
    evaluations = run.get_asset_check_evaluations()
    assert sorted((e.check_name, str(e.partition)) for e in evaluations) == sorted(
        (check.check_key.name, partition) for check in LIVE_CHECKS for partition in partitions
    )
    # The UI's per-partition check status: each evaluation is current for its partition.
    infos = sensor.instance.event_log_storage.get_asset_check_partition_info(
        [check.check_key for check in LIVE_CHECKS]
    )
    assert sorted((i.check_key.name, i.partition_key) for i in infos if i.is_current) == sorted(
        (check.check_key.name, partition) for check in LIVE_CHECKS for partition in partitions
    )
    # Automation rebuilds nothing the pickup did, and bars_1m follows each partition.
    both = {
        dg.MultiPartitionKey({"date": day.isoformat(), "instrument": f"BINANCE:{s}"})
        for s in counts
    }
    assert automation_after.get_requested_partitions(bars_1m.key) == both
    assert automation_after.get_num_requested(bars_1s.key) == 0
    assert automation_after.get_num_requested(features.key) == 0
    assert automation_after.get_num_requested(cross_features.key) == 0


def test_nothing_waiting_means_no_run_even_when_the_cursor_is_lost(tmp_path, landing, sensor):
    land(landing, [trade(i) for i in range(1, 81)], [trade(i, "ETHUSDT") for i in range(1, 21)])
    (request,) = sensor.tick().run_requests or []
    ingest_bronze_and_silver(request, tmp_path, sensor.instance)

    carried = sensor.tick()
    forgotten = Sensor(sensor.instance, landing).tick()  # e.g. the sensor was reset

    assert carried.run_requests == forgotten.run_requests == []
    assert forgotten.skip_reason is not None


def test_partitions_with_a_run_in_progress_wait_and_the_others_go_on(landing, sensor):
    land(landing, [trade(i) for i in range(1, 21)], [trade(i, "ETHUSDT") for i in range(1, 21)])
    btc_key, eth_key = key(DAY, BTC), key(DAY, ETH)
    whole_day = dg.DagsterRun(
        job_name=LIVE_JOB_NAME,
        run_id="range-run",
        status=IN_PROGRESS,
        tags={RANGE_START: btc_key, RANGE_END: eth_key},
    )
    sensor.instance.add_run(whole_day)

    during = sensor.tick()
    sensor.instance.report_run_failed(whole_day)
    sensor.instance.add_run(
        dg.DagsterRun(
            job_name=LIVE_JOB_NAME,
            run_id="btc-run",
            status=IN_PROGRESS,
            tags={"dagster/partition": btc_key},
        )
    )
    after = sensor.tick()

    assert during.run_requests == []
    assert during.skip_reason is not None
    assert during.skip_reason.skip_message == f"waiting: {btc_key}, {eth_key}"
    (request,) = after.run_requests or []
    assert request.partition_key == eth_key
    assert request.tags["trading/symbols"] == ETH


def test_a_partition_whose_last_pickup_stopped_partway_runs_on_its_own(tmp_path, landing, sensor):
    land(landing, [trade(i) for i in range(1, 31)])
    ingest_bronze_and_silver(requested(sensor.tick())[key(DAY, BTC)], tmp_path, sensor.instance)
    land(landing, [trade(i) for i in range(31, 61)], [trade(i, "ETHUSDT") for i in range(1, 31)])

    result = sensor.tick()

    assert sorted(request.tags["trading/symbols"] for request in result.run_requests or []) == [
        BTC,
        ETH,
    ]


def test_a_range_holds_neighbours_only():
    sol, kraken = "BINANCE:SOLUSDT", "KRAKEN:BTC/USD"
    instruments = [BTC, ETH, sol, kraken]
    waiting = {BTC: "b", ETH: "e", kraken: "x"}

    grouped = pickup_groups(instruments, waiting, alone=set())
    with_alone = pickup_groups(instruments, {**waiting, sol: "s"}, alone={ETH})

    assert grouped == [{BTC: "b", ETH: "e"}, {kraken: "x"}]
    assert with_alone == [{BTC: "b"}, {ETH: "e"}, {sol: "s", kraken: "x"}]


def test_a_run_over_instruments_no_longer_offered_still_holds_the_ends_of_its_range():
    tags = {RANGE_START: key(DAY, BTC), RANGE_END: key(DAY, "BINANCE:SOLUSDT")}

    assert run_partition_keys(tags) == [key(DAY, BTC), key(DAY, "BINANCE:SOLUSDT")]
