"""``make run`` on a throwaway copy of the repository, for ``bench_system``.

The copy holds the working tree's files (``git ls-files``, tracked and untracked but not ignored,
modification times kept) and a symlink to the repository's ``.venv``; ``PYTHONPATH`` points at the
copy so every process (the simulator, ``dagster dev`` and its code servers and runs, the sidecar)
imports the copy's code, and ``UV_NO_SYNC`` keeps ``uv run`` from touching the shared environment.
Its ``dagster_home`` and data start empty. Every port is a free loopback port.

:class:`RunningSystem` starts ``make run`` in its own process group and stops it with SIGINT to
the group, then SIGKILL to the group and to any descendant that left it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

LOOPBACK = "127.0.0.1"
MODEL_NAME = "signal"
# Variables that would point the copy's processes at someone else's state.
FOREIGN_STATE = (
    "DAGSTER_HOME",
    "TRADING_DATA_DIR",
    "TRADING_LANDING_DIR",
    "TRADING_ENV",
    "SIDECAR_URL",
    "MLFLOW_TRACKING_URI",
    "VIRTUAL_ENV",
)
STOP_GRACE_S = 20.0
POLL_S = 1.0
T = TypeVar("T")


@dataclass
class Row:
    """One line of the table: a measure, its seconds (None: not measured), floor and note."""

    measure: str
    seconds: float | None
    floor: str = ""
    note: str = ""


def span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def copy_worktree(source: Path, target: Path) -> int:
    """Copy the repository's non-ignored files to ``target`` and link its ``.venv``; file count."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source,
        check=True,
        capture_output=True,
    ).stdout.decode()
    copied = 0
    for name in filter(None, listed.split("\0")):
        origin = source / name
        if not origin.is_file():  # deleted in the working tree
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination)  # keeps mtimes: make sees the environment as synced
        copied += 1
    (target / ".venv").symlink_to(source / ".venv")
    return copied


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def descendants(root: int) -> dict[int, bytes]:
    """Every live descendant of ``root`` with its command line (to recognize it later)."""
    tree, found, stack = _children(), {}, [root]
    while stack:
        for child in tree.get(stack.pop(), []):
            line = _cmdline(child)
            if line is not None:
                found[child] = line
                stack.append(child)
    return found


@dataclass
class Ports:
    sim: int = field(default_factory=free_port)
    sidecar: int = field(default_factory=free_port)
    mlflow: int = field(default_factory=free_port)
    dagster: int = field(default_factory=free_port)

    def make_args(self) -> list[str]:
        return [
            f"SIM_HOST={LOOPBACK}",
            f"SIM_PORT={self.sim}",
            f"SIDECAR_PORT={self.sidecar}",
            f"MLFLOW_PORT={self.mlflow}",
            f"DAGSTER_PORT={self.dagster}",
        ]


class RunningSystem:
    """``make run`` in ``root`` (a copy made by :func:`copy_worktree`) and clients for it."""

    def __init__(self, root: Path, extra_env: dict[str, str], history_days: int) -> None:
        self.root = root
        self.ports = Ports()
        self.history_days = history_days
        base = {k: v for k, v in os.environ.items() if k not in FOREIGN_STATE}
        self.env = base | extra_env | {"PYTHONPATH": str(root), "UV_NO_SYNC": "1"}
        self.log_path = root / "make-run.log"
        self.http = httpx.Client(timeout=5.0)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._seen: dict[int, bytes] = {}
        self.started_s = 0.0

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def market_env(self) -> dict[str, str]:
        """What the Makefile gives processes that talk to the market (the simulator)."""
        http = f"http://{LOOPBACK}:{self.ports.sim}"
        return self.env | {
            "DAGSTER_HOME": str(self.dagster_home),
            "BINANCE_BULK_BASE_URL": http,
            "BINANCE_REST_BASE_URL": http,
            "BINANCE_WS_BASE_URL": f"ws://{LOOPBACK}:{self.ports.sim}",
            "TRADING_INSTRUMENTS": "BINANCE:BTCUSDT,BINANCE:ETHUSDT",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> float:
        """Run ``make run``; returns the wall-clock start (s since the epoch)."""
        # -o: never remake .venv/.synced, which would sync the shared environment.
        command = ["make", "-o", ".venv/.synced", "run", f"HISTORY_DAYS={self.history_days}"]
        self._log = self.log_path.open("wb")
        self.started_s = time.time()
        self._process = subprocess.Popen(
            [*command, *self.ports.make_args()],
            cwd=self.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self.started_s

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def remember_processes(self) -> None:
        """Note the current descendants, so ones that leave the process group are still ended."""
        if self._process is not None:
            self._seen |= descendants(self._process.pid)

    def stop(self) -> None:
        """SIGINT to the process group, then SIGKILL to it and to every remembered descendant."""
        process = self._process
        if process is None:
            return
        self.remember_processes()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid, line in self._seen.items():
            if _cmdline(pid) == line:  # still the same process, not a reused id
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        self._process = None
        if self._log is not None:
            self._log.close()
        self.http.close()

    def log_tail(self, needle: str = "", lines: int = 15) -> str:
        """The last ``lines`` lines of ``make run``'s output (containing ``needle``)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join([line for line in text.splitlines() if needle in line][-lines:])

    # --- clients -------------------------------------------------------------------------------

    def _get_json(self, url: str, **params: Any) -> Any:
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def latest_predictions(self) -> dict[str, dict[str, Any]]:
        """The sidecar's ``/predictions/latest`` (empty when it does not answer)."""
        body = self._get_json(f"http://{LOOPBACK}:{self.ports.sidecar}/predictions/latest")
        return body if isinstance(body, dict) else {}

    def model_versions(self) -> list[dict[str, Any]]:
        """The registered model's versions from the MLflow server (aliases and tags included)."""
        url = f"http://{LOOPBACK}:{self.ports.mlflow}/api/2.0/mlflow/model-versions/search"
        body = self._get_json(url, filter=f"name='{MODEL_NAME}'", max_results=200)
        return list(body.get("model_versions", [])) if isinstance(body, dict) else []

    def _mlflow_url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.ports.mlflow}/api/2.0/mlflow/{path}"

    def version_by_alias(self, alias: str) -> dict[str, Any] | None:
        """The version behind ``MODEL_NAME@alias`` (None: no such alias or no answer)."""
        url = self._mlflow_url("registered-models/alias")
        body = self._get_json(url, name=MODEL_NAME, alias=alias)
        return body.get("model_version") if isinstance(body, dict) else None

    def copy_version(self, version: dict[str, Any]) -> dict[str, Any]:
        """A new version of ``MODEL_NAME`` with ``version``'s artifact (same source and run) and
        its registration tags, the evaluation gate's verdict (``gate.*``) among them, since the
        artifact is the one the gate judged; the rollout's ``rollout.*`` tags stay behind."""
        tags = [t for t in version.get("tags", []) if not t["key"].startswith("rollout.")]
        payload = {
            "name": MODEL_NAME,
            "source": version["source"],
            "run_id": version.get("run_id", ""),
            "tags": tags,
        }
        response = self.http.post(self._mlflow_url("model-versions/create"), json=payload)
        response.raise_for_status()
        return dict(response.json()["model_version"])

    def set_alias(self, alias: str, version: str) -> None:
        payload = {"name": MODEL_NAME, "alias": alias, "version": version}
        response = self.http.post(self._mlflow_url("registered-models/alias"), json=payload)
        response.raise_for_status()

    def set_faults(self, **plan: float | None) -> None:
        url = f"http://{LOOPBACK}:{self.ports.sim}/_sim/faults"
        self.http.post(url, json=plan).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete(f"http://{LOOPBACK}:{self.ports.sim}/_sim/faults").raise_for_status()


def wait_for(
    system: RunningSystem, probe: Callable[[], T | None], timeout_s: float, poll_s: float = POLL_S
) -> T | None:
    """Poll ``probe`` until it returns something, the timeout passes or ``make run`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and system.alive():
        found = probe()
        if found is not None:
            return found
        system.remember_processes()
        time.sleep(poll_s)
    return None


@contextlib.contextmanager
def running_system(
    root: Path, extra_env: dict[str, str], history_days: int
) -> Iterator[RunningSystem]:
    system = RunningSystem(root, extra_env, history_days)
    try:
        system.start()
        yield system
    finally:
        system.stop()
