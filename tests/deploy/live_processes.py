"""The processes of the live Prometheus test: a sidecar on a thread of its own, Prometheus on
loopback with the deployed rules, and how each is waited for and stopped."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import yaml

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from tests.deploy.promql import RULE_FILES, require_binary
from tests.integration.live_sidecar import start_sidecar, stop_sidecar
from tests.services import free_port

T = TypeVar("T")


class SidecarThread:
    """A sidecar running on an event loop of its own thread, so that the tests can wait on
    Prometheus synchronously while it serves."""

    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sidecar")
        self.sidecar: Sidecar | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        self.sidecar, self.task = started.result(timeout=60)

    async def _start(self) -> tuple[Sidecar, asyncio.Task[None]]:
        return start_sidecar(self.config)

    def stop(self) -> None:
        """Stop the sidecar gracefully (idempotent), then its loop and thread."""
        if self.sidecar is not None and self.task is not None:
            sidecar, task, self.sidecar, self.task = self.sidecar, self.task, None, None
            asyncio.run_coroutine_threadsafe(stop_sidecar(sidecar, task), self.loop).result(60)
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float) -> T:
    """``check()``'s first truthy answer, polled twice a second."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.5)


def rules_with_short_for(folder: Path, duration: str) -> None:
    """The deployed rule files, copied into ``folder`` with each ``for:`` set to ``duration``
    (and nothing else changed)."""
    folder.mkdir(parents=True)
    for path in RULE_FILES:
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = duration
        (folder / path.name).write_text(yaml.safe_dump(rules, sort_keys=False))


def start_prometheus(
    root: Path, sidecar: str, exporter: str, alert_for: str
) -> tuple[str, subprocess.Popen]:
    """Prometheus on a free loopback port, its data under ``root``, scraping the sidecar
    (job ``sidecar``) and the metrics exporter (job ``dagster``) every second and evaluating the
    deployed rules every second, each ``for:`` set to ``alert_for``; returns its URL."""
    binary = require_binary("prometheus")
    rules_with_short_for(root / "rules", alert_for)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules/*.yml"],
        "scrape_configs": [
            {"job_name": "sidecar", "static_configs": [{"targets": [sidecar]}]},
            {"job_name": "dagster", "static_configs": [{"targets": [exporter]}]},
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={address}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("wb"),
    )
    url = f"http://{address}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError((root / "prometheus.log").read_text())
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        return False

    wait_for("Prometheus ready", ready, 30)
    return url, process


def terminate(process: subprocess.Popen, timeout_s: float = 30) -> int:
    """SIGTERM and wait; the exit code (a process that would not stop is killed, and fails)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return process.returncode
