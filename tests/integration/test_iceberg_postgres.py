"""The production catalog shape: the same lakehouse code on an Iceberg SQL catalog in PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from tests.services import PostgresServer, postgres_server
from trading_assets.lib.lakehouse.pipeline import fetch_raw, load_bronze, refine_silver
from trading_assets.lib.lakehouse.schemas import SILVER_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import count_partition
from trading_assets.resources import IcebergCatalogResource

SEED = 11
TRADES_PER_DAY = 4_000
DAY = dt.date(2024, 5, 2)
SYMBOL = "ETHUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the lakehouse's: Binance spot's SYMBOL


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def test_partition_lands_and_replaces_cleanly_in_a_postgres_catalog(tmp_path, postgres):
    expected = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY).day_trades(SYMBOL, DAY)
    catalog = IcebergCatalogResource(uri=postgres.url(), warehouse=(tmp_path / "wh").as_uri())

    with run_simulator_in_thread(
        symbols=[SYMBOL], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        lake = catalog.lakehouse()
        fetch_raw(lake, sim.http_url, INSTRUMENT, DAY)
    load_bronze(lake, INSTRUMENT, DAY)
    first = refine_silver(lake, INSTRUMENT, DAY)
    second = refine_silver(lake, INSTRUMENT, DAY)  # re-materialising replaces, never appends

    assert first.silver.rows == expected.height
    assert second.silver.rows == expected.height
    assert count_partition(lake.table(SILVER_TRADES_TABLE), DAY, INSTRUMENT) == expected.height
    with sa.create_engine(postgres.url()).connect() as connection:
        registered = connection.execute(
            sa.text("SELECT table_namespace, table_name FROM iceberg_tables")
        ).all()
    assert (SILVER_TRADES_TABLE.namespace, "trades") in {
        (namespace, name) for namespace, name in registered
    }
