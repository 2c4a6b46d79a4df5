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
SYMBOLS = ["BTCUSDT", "ETHUSDT"]  # the market's
INSTRUMENTS = [f"BINANCE:{s}" for s in SYMBOLS]  # the lakehouse's
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
        monkeypatch.setenv("TRADING_INSTRUMENTS", ",".join(INSTRUMENTS))
        monkeypatch.setenv("BINANCE_BULK_BASE_URL", sim.http_url)
        instance = dg.DagsterInstance.ephemeral()
        newest, _ = split_history(DAYS)

        missing_before = missing_days(instance, DAYS, INSTRUMENTS)

        # Act
        succeeded = ingest_in_process(instance, newest, INSTRUMENTS)

    # Assert
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=BACKFILL_JOB))
    assert succeeded == len(INSTRUMENTS)
    assert sorted(run.tags["dagster/partition"] for run in runs) == [
        f"{DAYS[-1]}|{instrument}" for instrument in INSTRUMENTS
    ]
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    # What a restart cut short after the first model would still backfill
    assert missing_before == DAYS
    assert missing_days(instance, DAYS, INSTRUMENTS) == DAYS[:-1]
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)
    lake = IcebergCatalogResource.local(data / "iceberg").lakehouse()
    for symbol, instrument in zip(SYMBOLS, INSTRUMENTS, strict=True):
        published = market.day_trades(symbol, DAYS[-1]).height
        assert count_partition(lake.table(SILVER_TRADES_TABLE), DAYS[-1], instrument) == published
        assert count_partition(lake.table(SILVER_TRADES_TABLE), DAYS[0], instrument) == 0
