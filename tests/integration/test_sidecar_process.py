"""``python -m streaming`` as an operator runs it: serves its API, then SIGTERM seals everything."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import httpx
import polars as pl

from streaming.landing import last_landed_trade_ids
from streaming.simulator.server import run_simulator_in_thread
from tests.services import free_port
from trading_assets.lib.lakehouse.landing import read_landed_trades

SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the sidecar's, Binance spot's SYMBOL


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def test_sigterm_flushes_and_seals_the_landing_and_exits_cleanly(tmp_path):
    port = free_port()
    with run_simulator_in_thread(symbols=[SYMBOL], seed=9, trades_per_day=3_000_000) as market:
        command = [
            sys.executable, "-m", "streaming", "--instruments", INSTRUMENT,
            "--ws-url", market.ws_url, "--rest-url", market.http_url,
            "--data-dir", str(tmp_path), "--port", str(port),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            healthy = wait_for(lambda: httpx.get(f"{base}/health").status_code == 200, 90)
            served = wait_for(
                lambda: INSTRUMENT in httpx.get(f"{base}/predictions/latest").json(), 30
            )
            trades = tmp_path / "landing" / "trades"
            writing = wait_for(lambda: any(trades.rglob("*.open")), 30)

            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        output = process.stdout.read().decode() if process.stdout else ""

    assert healthy and served, output[-2000:]
    assert writing  # a trade segment was open when the signal came
    assert code == 0, output[-2000:]
    assert "sidecar stopped" in output
    landing = tmp_path / "landing"
    assert not list(landing.rglob("*.open"))
    today = dt.datetime.now(dt.UTC).date()
    landed = read_landed_trades(landing, INSTRUMENT, today, dt.datetime.now(dt.UTC)).bronze
    ids = landed["id"].cast(pl.Int64).sort()
    assert ids.len() > 0 and ids.diff().drop_nulls().eq(1).all()
    assert last_landed_trade_ids(landing) == {INSTRUMENT: int(ids[-1])}
