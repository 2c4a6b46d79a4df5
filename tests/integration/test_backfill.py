"""Backfill days × instruments from the command line, executed by the Dagster daemon, against the
exchange simulator; the Iceberg row counts must equal the simulator's trades.

The commands are the ones an operator runs next to ``make run`` (whose ``dagster dev`` already
runs the daemon):

    dagster job backfill -m trading_assets.definitions -j lakehouse_daily \\
        --from '2024-03-01|BINANCE:BTCUSDT' --to '2024-03-02|BINANCE:ETHUSDT' --noprompt
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.lib.lakehouse.schemas import (
    BRONZE_TRADES_TABLE,
    QUARANTINE_TABLE,
    SILVER_TRADES_TABLE,
)
from trading_assets.lib.lakehouse.tables import count_partition
from trading_assets.resources import IcebergCatalogResource

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SEED, TRADES_PER_DAY = 7, 5_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")  # the market's
INSTRUMENTS = tuple(f"BINANCE:{s}" for s in SYMBOLS)  # the lakehouse's
DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(2)]
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def wait_for_runs(home: Path, expected: int, timeout: float) -> Sequence[DagsterRun]:
    """The backfill's runs once all are done (the daemon's automation may launch others too)."""
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(filters=RunsFilter(job_name="lakehouse_daily"))
        if len(runs) >= expected and all(run.status in TERMINAL for run in runs):
            return runs
        if time.monotonic() > deadline:
            states = sorted((r.tags.get("dagster/partition"), r.status.value) for r in runs)
            raise TimeoutError(f"backfill did not finish: {states}")
        time.sleep(2)


def test_cli_backfill_of_days_by_instruments_matches_the_simulator(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    with run_simulator_in_thread(
        symbols=list(SYMBOLS), seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "TRADING_DATA_DIR": str(data),
            "TRADING_HISTORY_START": DAYS[0].isoformat(),
            "TRADING_INSTRUMENTS": ",".join(INSTRUMENTS),
            "BINANCE_BULK_BASE_URL": sim.http_url,
        }
        backfill = subprocess.run(
            [
                str(BIN / "dagster"), "job", "backfill",
                "-m", "trading_assets.definitions", "-j", "lakehouse_daily",
                "--from", f"{DAYS[0]}|{INSTRUMENTS[0]}", "--to", f"{DAYS[-1]}|{INSTRUMENTS[-1]}",
                "--noprompt",
            ],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert backfill.returncode == 0, backfill.stderr[-2000:]
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "trading_assets.definitions"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            runs = wait_for_runs(home, expected=len(DAYS) * len(INSTRUMENTS), timeout=360)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)

    assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(
        f"{day}|{instrument}" for day in DAYS for instrument in INSTRUMENTS
    )
    assert {run.status for run in runs} == {DagsterRunStatus.SUCCESS}
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)
    lake = IcebergCatalogResource.local(data / "iceberg").lakehouse()
    for day in DAYS:
        for symbol, instrument in zip(SYMBOLS, INSTRUMENTS, strict=True):
            published = market.day_trades(symbol, day).height
            assert count_partition(lake.table(BRONZE_TRADES_TABLE), day, instrument) == published
            assert count_partition(lake.table(SILVER_TRADES_TABLE), day, instrument) == published
            assert count_partition(lake.table(QUARANTINE_TABLE), day, instrument) == 0
