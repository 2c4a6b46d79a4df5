"""A bad bulk file seen where a user sees it: the failed run of the Dagster assets, with the
simulator serving the file. The failure names the file and why; nothing downstream runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from streaming.simulator.server import SimulatorThread
from streaming.simulator.synthetic import SyntheticMarket
from tests.bulk_faults import break_day, bulk_simulator, land_day, served_then_cleared
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bronze_trades, silver_trades
from trading_assets.lib.lakehouse.bulk import raw_uri_for
from trading_assets.lib.lakehouse.landing import live_source
from trading_assets.lib.lakehouse.schemas import BRONZE_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import read_partition
from trading_assets.resources import BinanceBulkResource, IcebergCatalogResource

pytestmark = pytest.mark.faults

SYMBOL = "BTCUSDT"  # as the simulator and the bulk files name it
INSTRUMENT = f"BINANCE:{SYMBOL}"
DAY = dt.date(2024, 3, 1)
KEY = f"{DAY.isoformat()}|{INSTRUMENT}"
SEED = 5
TRADES_PER_DAY = 1_500


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    with bulk_simulator(SYMBOL, SEED, TRADES_PER_DAY) as sim:
        yield sim


@pytest.fixture
def sim(simulator: SimulatorThread) -> Iterator[str]:
    yield from served_then_cleared(simulator)


def resources(root: Path, bulk_url: str) -> dict[str, object]:
    return {
        "iceberg": IcebergCatalogResource.local(root),
        "binance_bulk": BinanceBulkResource(base_url=bulk_url),
    }


def failure(result: dg.ExecuteInProcessResult, asset: str):
    data = result.failure_data_for_node(asset)
    assert data is not None, f"{asset} did not fail"
    return data


def test_a_truncated_file_fails_the_run_naming_it_without_retries(tmp_path, sim):
    break_day(sim, SYMBOL, DAY, "truncated")

    result = dg.materialize(
        [raw_trades, bronze_trades, silver_trades],
        partition_key=KEY,
        resources=resources(tmp_path, sim),
        raise_on_error=False,
    )

    assert not result.success
    failed = failure(result, "raw_trades")
    url = f"{sim}/data/spot/daily/trades/{SYMBOL}/{SYMBOL}-trades-{DAY.isoformat()}.zip"
    assert failed.user_failure_data is not None
    description = failed.user_failure_data.description or ""
    assert description.startswith(f"{url}: a zip cut short")
    assert description.endswith("[truncated]")
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retried == []
    assert result.asset_materializations_for_node("bronze_trades") == []
    lake = IcebergCatalogResource.local(tmp_path).lakehouse()
    assert not lake.io.new_input(raw_uri_for(lake.raw_root, SYMBOL, DAY)).exists()


def test_bronze_refuses_a_bulk_day_that_lacks_live_trades_and_keeps_them(tmp_path, sim):
    landing = tmp_path / "landing"
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)
    landed = land_day(landing, market, INSTRUMENT, DAY)
    run_config = {"ops": {"bronze_trades": {"config": {"landing_root": str(landing)}}}}
    lake_resources = resources(tmp_path / "lake", sim)
    live = dg.materialize(
        [bronze_trades], partition_key=KEY, resources=lake_resources, run_config=run_config
    )
    assert live.success
    break_day(sim, SYMBOL, DAY, "short_day")

    result = dg.materialize(
        [raw_trades, bronze_trades],
        partition_key=KEY,
        resources=lake_resources,
        run_config=run_config,
        raise_on_error=False,
    )

    assert not result.success
    assert len(result.asset_materializations_for_node("raw_trades")) == 1
    error = failure(result, "bronze_trades").error
    assert error is not None and error.cause is not None  # the step's error, caused by bronze's
    message = error.cause.message
    assert (
        f"refusing to replace bronze.trades {INSTRUMENT} {DAY}: it holds {landed:,} rows" in message
    )
    lake = IcebergCatalogResource.local(tmp_path / "lake").lakehouse()
    bronze = read_partition(lake.table(BRONZE_TRADES_TABLE), DAY, INSTRUMENT, ("source",))
    assert bronze["source"].to_list() == [live_source(INSTRUMENT)] * landed
