"""The Dagster daemon turns the live pickup sensor's request into one run over both symbols of the
day, as under ``make run``: landed segments for two symbols, the real daemon and code location,
and the run's partitions recorded one by one in the instance and in Iceberg."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRun, RunsFilter
from dagster._core.instance.ref import InstanceRef

from tests.dagster.live_pickup import land, trade
from trading_assets.lib.lakehouse.pipeline import read_silver
from trading_assets.resources import IcebergCatalogResource

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COUNTS = {"BTCUSDT": 300, "ETHUSDT": 200}  # trades landed per Binance spot symbol


def binance(symbol: str) -> str:
    return f"BINANCE:{symbol}"


def wait_for_live_runs(home: Path, timeout: float) -> list[DagsterRun]:
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(filters=RunsFilter(job_name="live_trades_ingest"))
        if runs and all(run.is_finished for run in runs):
            return list(runs)
        if time.monotonic() > deadline:
            raise TimeoutError(f"live pickup did not finish: {[r.status.value for r in runs]}")
        time.sleep(2)


def test_the_daemon_picks_up_both_symbols_of_the_day_in_one_run(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    today = dt.datetime.now(dt.UTC).date()
    for symbol, count in COUNTS.items():
        land(data / "landing", [trade(i, symbol, today) for i in range(1, count + 1)])
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "TRADING_DATA_DIR": str(data),
        "TRADING_HISTORY_START": today.isoformat(),
        "TRADING_INSTRUMENTS": ",".join(map(binance, COUNTS)),
    }
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "trading_assets.definitions"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        runs = wait_for_live_runs(home, timeout=540)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    (run,) = runs
    assert run.is_success
    assert run.tags["trading/pickup"] == "live"
    assert run.tags["trading/symbols"] == "BINANCE:BTCUSDT,BINANCE:ETHUSDT"
    partitions = sorted(f"{today}|{binance(symbol)}" for symbol in COUNTS)
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    for asset in ("bronze_trades", "silver_trades", "bars_1s", "features"):
        assert sorted(instance.get_materialized_partitions(AssetKey(asset))) == partitions
    check = AssetCheckKey(AssetKey("silver_trades"), "no_duplicate_trade_ids")
    infos = instance.event_log_storage.get_asset_check_partition_info([check])
    assert sorted(str(info.partition_key) for info in infos if info.is_current) == partitions
    lake = IcebergCatalogResource.local(data / "iceberg").lakehouse()
    for symbol, count in COUNTS.items():
        assert read_silver(lake, binance(symbol), today)["trade_id"].to_list() == list(
            range(1, count + 1)
        )
