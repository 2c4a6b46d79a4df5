"""``make run`` stops on Ctrl-C: every process it started is gone within 10 s and make exits 0.

The real thing on a throwaway copy of the repository (as :mod:`bench.system_run` makes one: fresh
``dagster_home`` and data, the shared ``.venv`` untouched), on free loopback ports, with
``HISTORY_DAYS=0`` (no bootstrap; the simulator, ``dagster dev``, the sidecar and the MLflow UI
still start) and ``VENUES=binance,coinbase`` (the one sidecar serves both venues' instruments).
It runs the way a user runs it: typed into an interactive bash whose controlling terminal is a
pseudo-terminal, so make is the terminal's foreground job; once every service answers (the
sidecar with a prediction for an instrument of each venue), ^C is typed on that terminal, and the
terminal sends SIGINT to its foreground process group.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.system_run import FOREIGN_STATE, LOOPBACK, Ports, copy_worktree, descendants
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

STARTUP_TIMEOUT_S = 600  # dagster dev loads the code location; the machine may be busy
# Dagster gives a code server 180 s to start, which a busy 2-core machine can exceed.
CODE_SERVER_TIMEOUT = "\ncode_servers:\n  local_startup_timeout: 540\n"
STOP_DEADLINE_S = 10.0
CTRL_C = b"\x03"
VENUES = "binance,coinbase"
# A prediction (a safe-mode one, with no model yet) for an instrument of each venue.
SERVED = ("BINANCE:BTCUSDT", "COINBASE:BTC-USD")
# Processes of `dagster dev`: the ones that outlived the old recipe's Ctrl-C.
DAGSTER_PROCESSES = (b"dagster\x00dev", b"dagster_webserver", b"dagster._daemon", b"code-server")


def _take_controlling_terminal() -> None:
    """In the child, after setsid: make its stdin (the pseudo-terminal) its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _running(pid: int, cmdline: bytes) -> bool:
    """Whether ``pid`` is still the process first seen with ``cmdline`` and has not exited."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X") and Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Terminal:
    shell: subprocess.Popen[bytes]  # its exit status is make's
    master: int  # what is written here is typed on the terminal
    seen: dict[int, bytes] = field(default_factory=dict)  # processes to kill at the end


@contextlib.contextmanager
def make_run_in_a_terminal(root: Path, ports: Ports, log: Path) -> Iterator[Terminal]:
    """``make run HISTORY_DAYS=0 VENUES=...`` typed into an interactive bash on a pseudo-terminal;
    kills every process it has seen (and their descendants) and what is left of the shell at the
    end."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_STATE}
    env |= {"PYTHONPATH": str(root), "UV_NO_SYNC": "1", "TERM": "dumb"}
    # -o: never remake .venv/.synced, which would sync the shared environment.
    command = ["make", "-o", ".venv/.synced", "run", "HISTORY_DAYS=0", f"VENUES={VENUES}",
               *ports.make_args()]  # fmt: skip
    master, slave = os.openpty()
    with log.open("wb") as output:
        shell = subprocess.Popen(
            # `; exit $?` keeps bash from exec'ing make: the shell stays the session leader and
            # make runs as its foreground job, in its own process group.
            ["bash", "--norc", "--noprofile", "-i", "-c", '"$@"; exit $?', "bash", *command],
            cwd=root,
            env=env,
            stdin=slave,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_take_controlling_terminal,
        )
    os.close(slave)
    terminal = Terminal(shell, master)
    try:
        yield terminal
    finally:
        seen = terminal.seen | descendants(shell.pid)
        for pid in list(seen):
            seen |= descendants(pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        for pid, line in seen.items():
            if _running(pid, line):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            shell.wait(timeout=5)
        os.close(master)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_ctrl_c_ends_every_process_of_make_run_and_make_exits_0(tmp_path):
    root = tmp_path / "repo"
    copy_worktree(REPO_ROOT, root)
    with (root / "dagster_home" / "dagster.yaml").open("a") as instance_config:
        instance_config.write(CODE_SERVER_TIMEOUT)
    ports = Ports()
    log = tmp_path / "make-run.log"
    services = [
        f"http://{LOOPBACK}:{ports.dagster}/server_info",
        f"http://{LOOPBACK}:{ports.mlflow}/health",
        f"http://{LOOPBACK}:{ports.sidecar}/health",
        *(f"http://{LOOPBACK}:{ports.sidecar}/predictions/latest?symbol={i}" for i in SERVED),
    ]
    with make_run_in_a_terminal(root, ports, log) as terminal:
        shell = terminal.shell
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        waiting = list(services)
        while waiting and time.monotonic() < deadline and shell.poll() is None:
            waiting = [url for url in waiting if not _answers(url)]
            time.sleep(1.0)
        tail = log.read_text(errors="replace")[-3000:]
        assert not waiting, f"no answer from {waiting}; make run's output ends with:\n{tail}"
        started = descendants(shell.pid)
        terminal.seen |= started
        missing = [n for n in DAGSTER_PROCESSES if not any(n in c for c in started.values())]
        assert not missing, f"dagster dev's processes are not all running: {missing}"

        os.write(terminal.master, CTRL_C)
        stop_deadline = time.monotonic() + STOP_DEADLINE_S
        survivors = dict(started)
        while time.monotonic() < stop_deadline and (shell.poll() is None or survivors):
            survivors = {pid: line for pid, line in survivors.items() if _running(pid, line)}
            time.sleep(0.2)
        status = shell.poll()

        names = sorted(line.replace(b"\x00", b" ")[:120].decode() for line in survivors.values())
        assert not names, f"still running {STOP_DEADLINE_S:g} s after Ctrl-C: {names}"
        tail = log.read_text(errors="replace")[-3000:]
        assert status == 0, f"make's exit status after Ctrl-C: {status}; output ends with:\n{tail}"
