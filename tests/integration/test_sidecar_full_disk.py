"""A full disk under a real sidecar process (``python -m streaming``): landing pauses and says so,
predictions go on, and every trade the simulator sent lands exactly once, across a crash while
paused (the run starts recorded before anything landed) and a pause in a running sidecar (the
missed trades fetched again by id once space returns).

The landing folder is a small tmpfs the test fills with a file; the simulator's market runs at
10× wall-clock pace so a few seconds carry trades on both symbols.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from streaming.landing import TRADES_KIND, last_landed_trade_ids
from streaming.simulator.clock import market_clock
from streaming.simulator.server import run_simulator_in_thread
from tests.full_disk import MiB, fill, small_tmpfs
from tests.services import free_port
from trading_assets.lib.instruments import instrument_id
from trading_assets.lib.lakehouse.landing import list_segments, read_complete_lines

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SYMBOLS = ("BTCUSDT", "ETHUSDT")  # the market's
INSTRUMENTS = tuple(instrument_id("BINANCE", s) for s in SYMBOLS)  # the sidecar's
DISK_BYTES = 48 * MiB
MIN_FREE = "16MiB"
LOW_BYTES = 4 * MiB  # what the filler leaves: below the minimum, room for the run starts
START_TIMEOUT_S = 120.0  # the sidecar's imports take seconds, more on a loaded host


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if value := condition():
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Sidecar:
    """``python -m streaming`` with its landing folder on the small disk."""

    def __init__(self, sim: Any, data: Path, landing: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        env = {**os.environ, "TRADING_LANDING_DIR": str(landing), "TRADING_LANDING_URI": "",
               "TRADING_LANDING_MIN_FREE": MIN_FREE}  # fmt: skip
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "streaming", "--instruments", ",".join(INSTRUMENTS),
                "--ws-url", sim.ws_url, "--rest-url", sim.http_url, "--data-dir", str(data),
                "--port", str(self.port),
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def get(self, path: str) -> httpx.Response:
        if self.process.poll() is not None:
            raise AssertionError(f"the sidecar exited with {self.process.returncode}")
        return httpx.get(self.base + path, timeout=5)

    def landing_reasons(self) -> list[str]:
        reasons = self.get("/ready").json()["reasons"]
        return [reason for reason in reasons if "landing" in reason]

    def gauges(self) -> dict[str, float]:
        lines = self.get("/metrics").text.splitlines()
        pairs = (line.split(" ", 1) for line in lines if line.startswith("sidecar_landing_"))
        return {name: float(value) for name, value in pairs}

    def serving(self) -> bool:
        return set(self.get("/predictions/latest").json()) == set(INSTRUMENTS)

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.log.close()


def next_trade_ids(sim: Any) -> dict[str, int]:
    """Per symbol, the id of the next trade the market will make (its newest one's successor)."""
    return {
        symbol: httpx.get(
            f"{sim.http_url}/api/v3/trades", params={"symbol": symbol, "limit": 1}, timeout=60
        ).json()[-1]["id"]
        + 1
        for symbol in SYMBOLS
    }


def landed_trades(landing: Path, symbol: str) -> list[tuple[int, str, str]]:
    """(id, price, quantity) of every landed trade of ``symbol``, in landing order."""
    import msgspec

    rows = []
    instrument = instrument_id("BINANCE", symbol)
    for segment in list_segments(landing, TRADES_KIND, instrument=instrument, include_open=True):
        assert segment.sealed, f"{segment.path} left open"
        for line in read_complete_lines(segment.path).splitlines():
            record = msgspec.json.decode(line)
            rows.append((record["trade_id"], record["price"], record["quantity"]))
    return rows


def landed_past(landing: Path, ids: dict[str, int]) -> bool:
    """Whether every symbol has landed its trade ``ids[symbol]`` or a later one."""
    landed = last_landed_trade_ids(landing)
    return all(
        landed.get(instrument_id("BINANCE", symbol), -1) >= trade_id
        for symbol, trade_id in ids.items()
    )


def exchange_trades(sim: Any, symbol: str, first: int, last: int) -> list[tuple[int, str, str]]:
    """The simulator's own trades ``first..last``, as its REST API serves them."""
    from streaming.simulator.binance.rest import trades_json

    history = sim.server.history
    now_us = sim.server.clock_ns() // 1000
    frame = history.locked(history.trades_from_id, symbol, first, last - first + 1, now_us)
    return [(t["id"], t["price"], t["qty"]) for t in trades_json(frame)]


def paused_and_shown(sidecar: Sidecar) -> tuple[list[str], dict[str, float]] | None:
    reasons, gauges = sidecar.landing_reasons(), sidecar.gauges()
    if any("landing paused" in r for r in reasons) and gauges.get("sidecar_landing_paused") == 1:
        return reasons, gauges
    return None


@pytest.mark.timeout(240)
def test_a_full_disk_pauses_landing_and_every_trade_the_market_sent_lands_once(tmp_path):
    clock = market_clock(dt.datetime.now(dt.UTC), speed=10.0)
    log = tmp_path / "sidecar.log"
    with (
        small_tmpfs(tmp_path / "disk", DISK_BYTES) as disk,
        run_simulator_in_thread(
            symbols=list(SYMBOLS), clock_ns=clock, trades_per_day=1_000_000
        ) as sim,
    ):
        landing = disk / "landing"
        filler = fill(disk, LOW_BYTES)  # the first run starts on a disk below the minimum
        first = Sidecar(sim, tmp_path / "data", landing, log)
        try:
            reasons, gauges = wait_for(lambda: paused_and_shown(first), START_TIMEOUT_S, "a pause")
            wait_for(lambda: sim.server.hub.subscriber_count > 0, 30, "the market connection")
            sent_from = next_trade_ids(sim)  # every later trade reaches the first run
            wait_for(first.serving, 30, "predictions while landing is paused")
            time.sleep(1)
        finally:
            first.stop(signal.SIGKILL)  # a crash while nothing of it had landed
        nothing_landed = not list_segments(landing, TRADES_KIND, include_open=True)

        filler.unlink()
        second = Sidecar(sim, tmp_path / "data", landing, log)
        try:
            wait_for(second.serving, START_TIMEOUT_S, "the restarted sidecar")
            wait_for(lambda: not second.landing_reasons(), 30, "landing")
            filler = fill(disk, LOW_BYTES)  # full again, while it runs
            paused_at = next_trade_ids(sim)
            again, _ = wait_for(lambda: paused_and_shown(second), 30, "a second pause")
            time.sleep(1)
            filler.unlink()
            wait_for(lambda: not second.landing_reasons(), 60, "landing to resume")
            wait_for(lambda: landed_past(landing, paused_at), 60, "trades after the pause")
        finally:
            code = second.stop(signal.SIGTERM)

        landed = {symbol: landed_trades(landing, symbol) for symbol in SYMBOLS}
        exchange = {
            symbol: exchange_trades(sim, symbol, rows[0][0], rows[-1][0]) if rows else []
            for symbol, rows in landed.items()
        }

    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "landing paused" in reasons[0] and "minimum 16.0 MiB" in reasons[0], reasons
    assert gauges["sidecar_landing_free_bytes"] < gauges["sidecar_landing_min_free_bytes"]
    assert gauges["sidecar_landing_min_free_bytes"] == 16 * MiB
    assert 0 < gauges["sidecar_landing_free_ratio"] < 16 * MiB / DISK_BYTES
    assert "landing paused" in again[0], again
    assert nothing_landed  # so the restart could only resume from the first run's start
    for symbol in SYMBOLS:
        rows = landed[symbol]
        ids = [row[0] for row in rows]
        assert ids, f"no {symbol} trade landed"
        assert sorted(ids) == list(range(ids[0], ids[0] + len(ids))), f"{symbol}: a gap or a repeat"
        assert ids[0] <= sent_from[symbol], (symbol, ids[0], sent_from[symbol])  # from run 1
        assert max(ids) >= paused_at[symbol], symbol  # and on, past the second pause
        assert sorted(rows) == exchange[symbol], f"{symbol}: landed trades differ from the market's"
