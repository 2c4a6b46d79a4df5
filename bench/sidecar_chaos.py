"""Chaos run: a sidecar process (``python -m streaming``) against the simulator's synthetic
market, connections cut and the process SIGKILLed and restarted along the way, then its landed
trades ingested into silver and counted against the exchange's own trade history.

The market starts now and runs at ``speed``× wall-clock pace so seconds carry hundreds of trades
(not from a past afternoon: the sidecar closes bars by the wall clock, and an exchange clock
years behind it would make it close every second in between). A forced disconnect is the
simulator aborting the TCP connection (``drop_after_messages`` set until it fires once); a
restart is SIGKILL, reaping the process (so landing recovery sees it dead) and starting a new
one on the same data dir, which resumes from its last landed trade id.
The run ends with SIGTERM (graceful: landing sealed). Silver's trade ids between the first and
the last landed id are compared with the simulator's history over the same range: ``lost`` are
exchange ids missing from silver, ``duplicated`` silver rows beyond one per id, ``extra`` silver
ids the exchange never had, ``mismatched`` ids whose price or quantity differs. Landed duplicates
(before silver's dedup) are counted too: silver would hide them, so they are reported apart.
Shared by ``bench/bench_sidecar.py`` and ``tests/integration/test_sidecar_chaos.py``.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from bench.harness import REPO_ROOT

SYMBOLS = ("BTCUSDT", "ETHUSDT")
START_TIMEOUT_S = 300.0  # importing feast, mlflow and onnxruntime: 15 s of CPU, minutes when loaded


@dataclass(frozen=True)
class SymbolCount:
    """One symbol's silver compared with the exchange's trades over the landed id range."""

    symbol: str
    expected: int
    silver_rows: int
    lost: int
    duplicated: int
    extra: int
    mismatched: int
    landed_duplicates: int
    quarantined: int


@dataclass(frozen=True)
class ChaosResult:
    disconnects: int  # drops the simulator applied
    kills: int
    exit_code: int | None  # of the last sidecar, after SIGTERM
    seconds: float
    restart_s: list[float]  # SIGKILL → new process serving its API and connected to the market
    symbols: list[SymbolCount]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


class SidecarProcess:
    """``python -m streaming`` on a data dir, its log in ``log_path``."""

    def __init__(self, sim: Any, data: Path, log_path: Path) -> None:
        from tests.services import free_port

        self.port = free_port()
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "streaming",
                "--instruments", ",".join(map(_instrument, SYMBOLS)),
                "--ws-url", sim.ws_url, "--rest-url", sim.http_url,
                "--data-dir", str(data), "--port", str(self.port), "--predict-every", "1",
            ],
            cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"sidecar exited with {self.process.returncode}; see {self.log.name}"
            )
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()  # reaped: landing recovery then sees its pid as dead
        self.log.close()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.log.close()


def _connected(sim: Any) -> bool:
    return sim.server.hub.subscriber_count > 0


def _force_disconnect(sim: Any) -> int:
    """Have the simulator cut the sidecar's connection once; the drops it applied."""
    faults = sim.server.faults
    sim.set_faults(drop_after_messages=1)
    _wait(lambda: faults.applied["dropped"] > 0, 30, "a forced disconnect")
    dropped = faults.applied["dropped"]
    sim.clear_faults()  # the reconnection must stay up
    return dropped


def _wait_until_serving(sim: Any, sidecar: SidecarProcess) -> None:
    _wait(sidecar.healthy, START_TIMEOUT_S, "the sidecar's API")
    _wait(lambda: _connected(sim), 30, "the sidecar's market connection")


def run_chaos(
    work: Path,
    disconnects: int,
    kills: int,
    dwell_s: float = 2.0,
    speed: float = 10.0,
    trades_per_day: int = 1_000_000,
) -> ChaosResult:
    """Run the chaos scenario under ``work`` and count silver against the exchange."""
    from streaming.simulator.clock import market_clock
    from streaming.simulator.server import run_simulator_in_thread

    work.mkdir(parents=True, exist_ok=True)
    data, log_path = work / "data", work / "sidecar.log"
    started = time.monotonic()
    plan = _interleave(disconnects, kills)
    clock = market_clock(dt.datetime.now(dt.UTC), speed=speed)
    with run_simulator_in_thread(
        symbols=list(SYMBOLS), clock_ns=clock, trades_per_day=trades_per_day
    ) as sim:
        sidecar = SidecarProcess(sim, data, log_path)
        try:
            _wait_until_serving(sim, sidecar)
            dropped = killed = 0
            restarts: list[float] = []
            for event in plan:
                time.sleep(dwell_s)
                if event == "drop":
                    dropped += _force_disconnect(sim)
                    _wait(lambda: _connected(sim), 30, "the reconnection")
                else:
                    killed_at = time.monotonic()
                    sidecar.kill()
                    killed += 1
                    sidecar = SidecarProcess(sim, data, log_path)
                    _wait_until_serving(sim, sidecar)
                    restarts.append(time.monotonic() - killed_at)
            time.sleep(dwell_s)
            exit_code = sidecar.terminate()
        finally:
            if sidecar.process.poll() is None:  # a failed run must not leave it behind
                sidecar.kill()
        counts = [_count(sim, data / "landing", work / "iceberg", s) for s in SYMBOLS]
    elapsed = time.monotonic() - started
    return ChaosResult(dropped, killed, exit_code, elapsed, restarts, counts)


def _interleave(disconnects: int, kills: int) -> list[str]:
    """``disconnects`` drops and ``kills`` kills, the kills spread evenly among the drops."""
    plan: list[str] = []
    per_kill = disconnects / (kills + 1)
    for k in range(kills + 1):
        plan += ["drop"] * (round(per_kill * (k + 1)) - round(per_kill * k))
        if k < kills:
            plan.append("kill")
    return plan


def _instrument(symbol: str) -> str:
    """The instrument id the sidecar and the lakehouse key the simulator's ``symbol`` by."""
    return f"BINANCE:{symbol}"


def _count(sim: Any, landing: Path, iceberg: Path, symbol: str) -> SymbolCount:
    """landing → bronze → silver for every landed day, compared with the exchange's trades."""
    from trading_assets.lib.instruments import path_name
    from trading_assets.lib.lakehouse.landing import read_landed_trades
    from trading_assets.lib.lakehouse.pipeline import load_bronze, read_silver, refine_silver
    from trading_assets.resources import IcebergCatalogResource

    if list(landing.rglob("*.open")):
        raise RuntimeError(f"unsealed landing segments left under {landing}")
    lake = IcebergCatalogResource.local(iceberg).lakehouse()
    instrument = _instrument(symbol)
    folder = landing / "trades" / path_name(instrument)
    days = sorted(dt.date.fromisoformat(p.name) for p in folder.iterdir())
    silver, landed, quarantined = [], [], 0
    for day in days:
        load_bronze(lake, instrument, day, landing_root=landing)
        quarantined += refine_silver(lake, instrument, day).quarantine.rows
        silver.append(read_silver(lake, instrument, day, ("trade_id", "price", "qty")))
        now = dt.datetime.now(dt.UTC)
        landed.append(read_landed_trades(landing, instrument, day, now).bronze.select("id"))
    rows = pl.concat(silver)
    landed_ids = pl.concat(landed)["id"]
    first, last = int(rows["trade_id"].min()), int(rows["trade_id"].max())  # type: ignore[arg-type]
    exchange = _exchange_trades(sim, symbol, first, last)
    ids = set(rows["trade_id"].to_list())
    expected = {row["id"]: (row["price"], row["qty"]) for row in exchange.iter_rows(named=True)}
    unique = rows.unique("trade_id")
    mismatched = sum(
        1
        for trade_id, price, quantity in unique.iter_rows()
        if trade_id in expected
        and (float(price), float(quantity)) != tuple(map(float, expected[trade_id]))
    )
    return SymbolCount(
        symbol=symbol,
        expected=len(expected),
        silver_rows=rows.height,
        lost=len(expected.keys() - ids),
        duplicated=rows.height - unique.height,
        extra=len(ids - expected.keys()),
        mismatched=mismatched,
        landed_duplicates=landed_ids.len() - landed_ids.n_unique(),
        quarantined=quarantined,
    )


def _exchange_trades(sim: Any, symbol: str, first: int, last: int) -> pl.DataFrame:
    """The simulator's own trades ``first..last`` (what its REST API serves), as strings."""
    from streaming.simulator.binance.rest import trades_json

    history = sim.server.history
    now_us = sim.server.clock_ns() // 1000
    frame = history.locked(history.trades_from_id, symbol, first, last - first + 1, now_us)
    return pl.DataFrame(trades_json(frame)).select("id", "price", "qty")
