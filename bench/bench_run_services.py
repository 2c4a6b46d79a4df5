"""Memory of each service ``make run`` starts, and of the MLflow UI on MLflow's own defaults.

1. ``make run HISTORY_DAYS=0`` on a throwaway copy (:mod:`bench.system_run`: fresh state, free
   loopback ports). Once the Dagster webserver, the MLflow UI and the sidecar answer and
   ``SETTLE_S`` more seconds have passed, each service's process tree (a child of the launcher
   and all its descendants) is measured ``SAMPLES`` times, ``SAMPLE_EVERY_S`` apart; the table
   shows each service's largest sample. No bootstrap: a model chain's runs would be measured as
   Dagster's.
2. Peer: ``mlflow ui --backend-store-uri sqlite:///...`` with MLflow's defaults (4 uvicorn
   workers, the job runner and its huey consumers), as ``make run`` started it before, on a fresh
   store, measured the same way.

RSS adds up each process's resident pages, so pages shared between processes (libraries, and the
copy-on-write pages of forked workers) count once per process; PSS shares them out, so its sum is
what the tree holds. Both are read from ``/proc/<pid>/smaps_rollup``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import REPO_ROOT
from bench.system_run import LOOPBACK, copy_worktree, free_port, running_system
from trading_assets.supervisor import descendants, process_table

SETTLE_S = 30.0
SAMPLES = 6
SAMPLE_EVERY_S = 10.0
STARTUP_TIMEOUT_S = 900.0
# A launcher child's command line → the service's name.
SERVICES = {
    b"streaming.simulator": "simulator",
    b"dagster\x00dev": "dagster",
    b"-m\x00streaming\x00": "sidecar",
    b"mlflow\x00server": "mlflow",
    b"trading_assets.bootstrap": "bootstrap",
}


@dataclass
class TreeMemory:
    processes: int = 0
    rss_mb: float = 0.0
    pss_mb: float = 0.0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def tree_memory(root: int) -> TreeMemory:
    """Summed RSS and PSS of ``root`` and its live descendants."""
    total = TreeMemory()
    for pid in [root, *descendants(root)]:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in rollup if ":" in line}
        total.processes += 1
        total.rss_mb += int(fields.get("Rss", 0)) / 1024
        total.pss_mb += int(fields.get("Pss", 0)) / 1024
    return total


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(ready: Callable[[], bool], alive: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        if ready():
            return True
        time.sleep(1.0)
    return False


def largest_samples(roots: Callable[[], dict[str, int]]) -> dict[str, TreeMemory]:
    """Each named tree's largest sample (by PSS) over ``SAMPLES`` samples."""
    largest: dict[str, TreeMemory] = {}
    for n in range(SAMPLES):
        if n:
            time.sleep(SAMPLE_EVERY_S)
        for name, pid in roots().items():
            sample = tree_memory(pid)
            if name not in largest or sample.pss_mb > largest[name].pss_mb:
                largest[name] = sample
    return largest


def launcher_services() -> dict[str, int]:
    """The services of the launcher that runs under this process, by name (their root pids)."""
    table = process_table()
    mine = descendants(os.getpid(), table)
    launchers = [pid for pid in mine if b"trading_assets.launcher" in _cmdline(pid)]
    found = {}
    for pid, info in table.items():
        if launchers and info.ppid == launchers[0] and not info.zombie:
            line = _cmdline(pid)
            name = next((n for key, n in SERVICES.items() if key in line), f"other {pid}")
            found[name] = pid
    return found


def measure_make_run(root: Path) -> dict[str, TreeMemory]:
    with running_system(root, {}, history_days=0) as system:
        urls = [
            f"http://{LOOPBACK}:{system.ports.dagster}/server_info",
            f"http://{LOOPBACK}:{system.ports.mlflow}/health",
            f"http://{LOOPBACK}:{system.ports.sidecar}/health",
        ]
        if not _wait(lambda: all(map(_answers, urls)), system.alive, STARTUP_TIMEOUT_S):
            raise RuntimeError(f"make run did not come up:\n{system.log_tail()}")
        time.sleep(SETTLE_S)
        return largest_samples(launcher_services)


def measure_mlflow_defaults(workdir: Path) -> TreeMemory:
    """``mlflow ui`` on MLflow's defaults, as ``make run`` used to start it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
         f"sqlite:///{workdir / 'mlflow.db'}", "--host", LOOPBACK, "--port", str(port)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    seen: dict[int, object] = {}
    try:
        url = f"http://{LOOPBACK}:{port}/health"
        if not _wait(lambda: _answers(url), lambda: process.poll() is None, STARTUP_TIMEOUT_S):
            raise RuntimeError("mlflow ui did not answer")
        time.sleep(SETTLE_S)
        seen = dict(descendants(process.pid))
        return largest_samples(lambda: {"mlflow": process.pid})["mlflow"]
    finally:
        seen |= descendants(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        for pid in [process.pid, *seen]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


def _row(name: str, memory: TreeMemory, note: str = "") -> str:
    return f"{name:<44} {memory.processes:>9} {memory.rss_mb:>9.0f} {memory.pss_mb:>9.0f}  {note}"


def main() -> None:
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-run-services-") as scratch:
        root = Path(scratch) / "repo"
        root.mkdir()
        copy_worktree(REPO_ROOT, root)
        services = measure_make_run(root)
        peer_dir = Path(scratch) / "mlflow-defaults"
        peer_dir.mkdir()
        peer = measure_mlflow_defaults(peer_dir)
    print(
        f"make run HISTORY_DAYS=0 on a throwaway copy; each service's largest of {SAMPLES} "
        f"samples {SAMPLE_EVERY_S:g} s apart, from {SETTLE_S:g} s after all answered"
    )
    print(f"{'process tree':<44} {'processes':>9} {'RSS MB':>9} {'PSS MB':>9}  note")
    for name, memory in services.items():
        print(_row(f"make run: {name}", memory))
    total = TreeMemory(
        sum(m.processes for m in services.values()),
        sum(m.rss_mb for m in services.values()),
        sum(m.pss_mb for m in services.values()),
    )
    print(_row("make run: all services", total))
    print(_row("peer: mlflow ui on MLflow's defaults", peer, "4 workers, job runner, huey"))
    print(f"1-min load average: {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
