"""The model watcher as the sidecar runs it: a child process, restarted when it dies, ended on
shutdown, and gone with its parent even when the parent is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streaming.model_files import mirror_dir, read_manifest
from streaming.watcher_process import WatcherProcess
from tests.integration.test_inference_swap import NAMES, Store, process_alive

# A sidecar in miniature: supervise the watcher, say its pid, run until killed.
SUPERVISOR = """
import asyncio, sys
from pathlib import Path
from streaming.watcher_process import WatcherProcess

async def main():
    watcher = WatcherProcess(sys.argv[1], "signal", Path(sys.argv[2]), 0.2)
    supervisor = asyncio.create_task(watcher.supervise())
    while watcher.pid is None:
        await asyncio.sleep(0.05)
    print(watcher.pid, flush=True)
    await supervisor

asyncio.run(main())
"""


async def wait_until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def champion_version(mirror: Path) -> str | None:
    manifest = read_manifest(mirror)
    entry = manifest.roles.get("champion") if manifest is not None else None
    return entry.version if entry is not None else None


async def test_a_killed_watcher_is_restarted_and_shutdown_ends_it(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", "signal")
    v1, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", v1)
    mirror = mirror_dir(tmp_path / "data", "signal")
    watcher = WatcherProcess(store.uri, "signal", mirror, poll_s=0.1, restart_delay_s=0.1)
    supervisor = asyncio.create_task(watcher.supervise())

    await wait_until(lambda: read_manifest(mirror) is not None)
    first = watcher.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: watcher.pid not in (None, first))
    second = watcher.pid
    v2, _ = store.register_trained(NAMES, seed=2)
    store.alias("champion", v2)
    await wait_until(lambda: champion_version(mirror) == v2)
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor

    assert watcher.restarts == 1
    assert second is not None and not process_alive(second)
    assert watcher.pid is None


async def test_a_sigkilled_parent_leaves_no_watcher_behind(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, f"sqlite:///{tmp_path / 'mlflow.db'}",
         str(tmp_path / "mirror")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        watcher_pid = int(await asyncio.to_thread(parent.stdout.readline))
        assert process_alive(watcher_pid)

        parent.kill()
        parent.wait(10)

        await wait_until(lambda: not process_alive(watcher_pid), timeout_s=30)
    finally:
        parent.kill()
        parent.wait(10)
