"""The bootstrap's first step: the newest day ingested in its own process against the simulator,
one recorded ``lakehouse_daily`` run per partition, every trade in silver."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.bootstrap import (
    BACKFILL_JOB,
    ingest_in_process,
    missing_days,
    split_history,
)
from trading_assets.lib.lakehouse.schemas import SILVER_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import count_partition
from trading_assets.resources import IcebergCatalogResource

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SEED, TRADES_PER_DAY = 11, 5_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DAYS = [dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)]


def test_the_first_model_waits_for_the_newest_day_only():
    newest, older = split_history(DAYS)

    assert newest == [DAYS[-1]]
    assert older == DAYS[:-1]
    assert split_history(DAYS[-1:]) == (DAYS[-1:], [])


def test_the_newest_day_is_ingested_in_process_as_one_run_per_partition(tmp_path, monkeypatch):
    # Arrange
    data = tmp_path / "data"
    with run_simulator_in_thread(
        symbols=SYMBOLS, seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        monkeypatch.setenv("TRADING_DATA_DIR", str(data))
        monkeypatch.setenv("TRADING_HISTORY_START", DAYS[0].isoformat())
        monkeypatch.setenv("TRADING_SYMBOLS", ",".join(SYMBOLS))
        monkeypatch.setenv("BINANCE_BULK_BASE_URL", sim.http_url)
        instance = dg.DagsterInstance.ephemeral()
        newest, _ = split_history(DAYS)

        missing_before = missing_days(instance, DAYS, SYMBOLS)

        # Act
        succeeded = ingest_in_process(instance, newest, SYMBOLS)

    # Assert
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=BACKFILL_JOB))
    assert succeeded == len(SYMBOLS)
    assert sorted(run.tags["dagster/partition"] for run in runs) == [
        f"{DAYS[-1]}|{symbol}" for symbol in SYMBOLS
    ]
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    # What a restart cut short after the first model would still backfill
    assert missing_before == DAYS
    assert missing_days(instance, DAYS, SYMBOLS) == DAYS[:-1]
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)
    lake = IcebergCatalogResource.local(data / "iceberg").lakehouse()
    for symbol in SYMBOLS:
        published = market.day_trades(symbol, DAYS[-1]).height
        assert count_partition(lake.table(SILVER_TRADES_TABLE), DAYS[-1], symbol) == published
        assert count_partition(lake.table(SILVER_TRADES_TABLE), DAYS[0], symbol) == 0
