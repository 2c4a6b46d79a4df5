"""Live pickup: the sensor requests each sealed landing state once, and ingestion never duplicates.

Real parts throughout: landing files written by ``LandingWriter``, a real Dagster instance, a tmp
Iceberg catalog, and the exchange simulator's bulk files for the day the bulk path takes over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import msgspec
import polars as pl
import pytest

from streaming.landing import TRADES_KIND, LandingWriter
from streaming.records import Trade
from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.features.assets import features
from trading_assets.defs.ingest.landing import (
    live_trades_ingest,
    live_trades_landing,
)
from trading_assets.defs.ingest.partitions import trade_partitions
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse import checks
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
from trading_assets.lib.lakehouse.landing import list_segments, live_source
from trading_assets.lib.lakehouse.pipeline import read_silver
from trading_assets.lib.lakehouse.schemas import BRONZE_TRADES_TABLE, QUARANTINE_TABLE
from trading_assets.lib.lakehouse.tables import read_partition
from trading_assets.resources import BinanceBulkResource, IcebergCatalogResource

from .live_pickup import DAY, SECOND, Sensor, day_start_ns, land, requested, trade

DAY_START_NS = day_start_ns(DAY)
BTC = "BINANCE:BTCUSDT"  # the partitions' instrument of the landed BTCUSDT trades
BTC_KEY = f"{DAY.isoformat()}|{BTC}"
ETH_KEY = f"{DAY.isoformat()}|BINANCE:ETHUSDT"
LIVE_CHECKS = [
    checks.no_duplicate_trade_ids,
    checks.time_never_goes_backwards,
    checks.trade_id_gaps,
    checks.no_price_spikes,
]
SEED = 11
TRADES_PER_DAY = 2_000


def ingest(
    request: dg.RunRequest, lake_root: Path, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    """What the requested run does: bronze + silver (+ the live checks) for its partitions."""
    result = dg.materialize(
        [bronze_trades, silver_trades, *LIVE_CHECKS],
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        resources={"iceberg": IcebergCatalogResource.local(lake_root)},
        instance=instance,
    )
    assert result.success
    return result


@pytest.fixture
def landing(tmp_path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def sensor(landing) -> Sensor:
    return Sensor(dg.DagsterInstance.ephemeral(), landing)


def test_sensor_requests_each_newly_sealed_state_of_a_partition_once(landing, sensor):
    empty = sensor.tick()
    with LandingWriter(landing, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600) as writer:
        for trade_id in range(1, 51):
            writer.write(trade(trade_id))
        writer.flush()
        only_open = sensor.tick()
        (first_sealed,) = writer.rotate()
    first = sensor.tick()
    again = sensor.tick()
    land(landing, [trade(i) for i in range(51, 81)], [trade(i, "ETHUSDT") for i in range(1, 9)])
    second = sensor.tick()

    assert requested(empty) == requested(only_open) == requested(again) == {}
    assert set(requested(first)) == {BTC_KEY}
    request = requested(first)[BTC_KEY]
    assert request.run_key == f"{BTC_KEY}@{first_sealed.name.removesuffix('.jsonl')}"
    assert request.run_config == {
        "ops": {"bronze_trades": {"config": {"landing_root": str(landing.resolve())}}}
    }
    # Both instruments now have a segment waiting: one run covers the two.
    assert len(second.run_requests or []) == 1
    assert set(requested(second)) == {BTC_KEY, ETH_KEY}
    assert requested(second)[BTC_KEY].run_key != request.run_key


def test_the_sensor_targets_the_live_ingestion_job_and_runs_by_default():
    assert live_trades_landing.default_status == dg.DefaultSensorStatus.RUNNING
    assert live_trades_landing.job_name == live_trades_ingest.name
    assert live_trades_landing.minimum_interval_seconds is not None
    assert live_trades_landing.minimum_interval_seconds <= 30


def test_days_the_partitions_do_not_offer_wait_in_the_cursor(landing, sensor):
    future = Trade("BTCUSDT", 1, "1.0", "1.0", False, DAY_START_NS * 3, None, DAY_START_NS * 3)
    land(landing, [future], [trade(1)])

    result = sensor.tick()

    assert set(requested(result)) == {BTC_KEY}
    assert sensor.cursor is not None and "2094" not in sensor.cursor


def test_ingestion_holds_exactly_the_landed_trades_and_repeating_it_adds_nothing(
    tmp_path, landing, sensor
):
    first_batches = [[trade(i) for i in range(1, 121)], [trade(i) for i in range(121, 301)]]
    land(landing, *first_batches)
    first_request = requested(sensor.tick())[BTC_KEY]

    first = ingest(first_request, tmp_path / "lake")
    repeated = ingest(first_request, tmp_path / "lake")
    silver_once = read_silver(lake(tmp_path), BTC, DAY)
    # A reconnect's gap-fill may land ids again; they must not reach silver twice.
    land(landing, [trade(i) for i in range(290, 401)])
    more = ingest(requested(sensor.tick())[BTC_KEY], tmp_path / "lake")

    silver = read_silver(lake(tmp_path), BTC, DAY)
    bronze = read_partition(lake(tmp_path).table(BRONZE_TRADES_TABLE), DAY, BTC)
    quarantine = read_partition(lake(tmp_path).table(QUARANTINE_TABLE), DAY, BTC)
    landed = [trade(i) for i in range(1, 401)]
    assert silver_once["trade_id"].to_list() == list(range(1, 301))
    assert silver["trade_id"].to_list() == [t.trade_id for t in landed]
    assert silver["price"].cast(pl.String).to_list() == [t.price for t in landed]
    assert silver["qty"].cast(pl.String).to_list() == [t.quantity for t in landed]
    assert silver["is_buyer_maker"].to_list() == [t.is_buyer_maker for t in landed]
    assert silver["event_time"].dt.epoch("us").to_list() == [t.trade_ns // 1000 for t in landed]
    assert bronze.height == 400 + 11 and quarantine.height == 11
    assert set(quarantine["reason"]) == {"duplicate_trade_id"}
    assert set(bronze["source"]) == {live_source(BTC)}
    segments = {s.relative_to(landing) for s in list_segments(landing, TRADES_KIND)}
    assert set(bronze["source_file"]) == segments and len(segments) == 3
    for result in (first, repeated, more):
        assert all(e.passed for e in result.get_asset_check_evaluations())
    bronze_meta = more.asset_materializations_for_node("bronze_trades")[0].metadata
    assert bronze_meta["landed_segments"].value == 3


def lake(tmp_path: Path):
    return IcebergCatalogResource.local(tmp_path / "lake").lakehouse()


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with run_simulator_in_thread(
        symbols=["BTCUSDT"], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        yield sim.http_url


def synthetic_trades(count: int) -> list[Trade]:
    """The first trades of the simulator's day, as the live stream delivered them."""
    day = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY).day_trades("BTCUSDT", DAY)
    return [
        Trade(
            "BTCUSDT",
            row["id"],
            row["price"],
            row["qty"],
            row["is_buyer_maker"],
            row["time"] * 1_000_000,
            row["time"] * 1_000_000,
            row["time"] * 1_000_000 + 5_000_000,
        )
        for row in day.head(count).iter_rows(named=True)
    ]


def test_the_bulk_file_replaces_live_rows_and_ends_live_pickup(
    tmp_path, landing, sensor, simulator
):
    land(landing, synthetic_trades(500))
    ingest(requested(sensor.tick())[BTC_KEY], tmp_path / "lake", sensor.instance)
    live_silver = read_silver(lake(tmp_path), BTC, DAY)

    bulk = dg.materialize(
        [raw_trades, bronze_trades, silver_trades, checks.rows_reconcile],
        partition_key=BTC_KEY,
        run_config={"ops": {"bronze_trades": {"config": {"landing_root": str(landing)}}}},
        resources={
            "iceberg": IcebergCatalogResource.local(tmp_path / "lake"),
            "binance_bulk": BinanceBulkResource(base_url=simulator),
        },
        instance=sensor.instance,
    )
    land(landing, synthetic_trades(600)[500:])
    after_bulk = sensor.tick()

    assert bulk.success
    silver = read_silver(lake(tmp_path), BTC, DAY)
    bronze = read_partition(lake(tmp_path).table(BRONZE_TRADES_TABLE), DAY, BTC)
    day_count = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY).trade_count(
        "BTCUSDT", DAY
    )
    assert silver.height == day_count > live_silver.height == 500
    assert set(bronze["source"]) == {"binance.bulk.daily_trades"}
    # Live and bulk rows of the same trades agree on every typed value.
    values = ["trade_id", "price", "qty", "quote_qty", "event_time", "is_buyer_maker"]
    assert live_silver.select(values).equals(silver.head(500).select(values))
    assert requested(after_bulk) == {}


def test_bars_and_features_follow_a_live_ingestion_and_it_is_not_requested_again(
    tmp_path, landing, sensor
):
    # The newest partition the definitions offer; eager automation follows that one.
    days = trade_partitions.get_partitions_def_for_dimension("date")
    newest_day = dt.date.fromisoformat(days.get_last_partition_key() or "")
    start_ns = int(dt.datetime.combine(newest_day, dt.time(), dt.UTC).timestamp()) * SECOND
    moved = [msgspec.structs.replace(trade(i), trade_ns=start_ns + i * SECOND) for i in range(199)]
    land(landing, moved)
    definitions = lazy_defs()
    before = dg.evaluate_automation_conditions(defs=definitions, instance=sensor.instance)

    ingest(requested(sensor.tick())[f"{newest_day}|{BTC}"], tmp_path / "lake", sensor.instance)
    after = dg.evaluate_automation_conditions(
        defs=definitions, instance=sensor.instance, cursor=before.cursor
    )

    partition = dg.MultiPartitionKey({"date": newest_day.isoformat(), "instrument": BTC})
    follow = {bars_1s.key, bars_1m.key, features.key}
    assert all(after.get_requested_partitions(key) == {partition} for key in follow)
    assert after.get_num_requested(bronze_trades.key) == 0
    assert after.get_num_requested(silver_trades.key) == 0
