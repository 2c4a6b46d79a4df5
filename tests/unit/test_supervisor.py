"""The supervisor behind ``make run`` ends every process its services start, however they treat
signals: it runs in its own process (as under ``make``), its services are small Python programs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO_ROOT

STOP_DEADLINE_S = 10.0
GRACE_S = 1.0
# Ignores SIGINT and SIGTERM, as dagster dev's processes did under the old recipe.
DEAF = "import signal, time\n" + "".join(
    f"signal.signal(signal.{name}, signal.SIG_IGN)\n" for name in ("SIGINT", "SIGTERM")
)
# Deaf, starts a deaf grandchild in a session of its own, notes both pids, then lives on (or
# exits with the status given as second argument: its grandchild becomes an orphan).
DEAF_WITH_GRANDCHILD = (
    DEAF
    + f"""import subprocess, sys, os
grandchild = subprocess.Popen(
    [sys.executable, "-c", {DEAF!r} + "time.sleep(600)"], start_new_session=True
)
with open(sys.argv[1], "a") as pids:
    pids.write(f"{{os.getpid()}} {{grandchild.pid}}\\n")
if len(sys.argv) > 2:
    time.sleep(0.5)
    sys.exit(int(sys.argv[2]))
time.sleep(600)
"""
)
RUNNER = (
    "import json, sys\n"
    "from trading_assets.supervisor import Service, Supervisor\n"
    "services = [Service(**spec) for spec in json.loads(sys.argv[1])]\n"
    "sys.exit(Supervisor(services, grace_s=float(sys.argv[2])).run('all started'))\n"
)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _noted_pids(path: Path, lines: int, timeout_s: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        noted = path.read_text().split() if path.exists() else []
        if len(noted) >= 2 * lines:
            return [int(pid) for pid in noted]
        time.sleep(0.05)
    raise AssertionError(f"the services did not note their pids in {timeout_s:g} s")


def _service(name: str, code: str, *args: str, one_shot: bool = False) -> dict[str, object]:
    return {"name": name, "argv": [sys.executable, "-c", code, *args], "one_shot": one_shot}


@contextlib.contextmanager
def supervising(services: list[dict[str, object]], pids: Path) -> Iterator[subprocess.Popen[str]]:
    """The supervisor in a process and session of its own; kills whatever is left at the end."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(services), str(GRACE_S)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        process.kill()
        noted = pids.read_text().split() if pids.exists() else []
        for pid in map(int, noted):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=10)


def _gone_by(process: subprocess.Popen[str], pids: list[int], deadline_s: float) -> list[int]:
    """Wait for the supervisor to exit and ``pids`` to be gone; the pids still running."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and (process.poll() is None or any(map(_running, pids))):
        time.sleep(0.05)
    return [pid for pid in pids if _running(pid)]


def test_sigint_ends_services_that_ignore_it_and_grandchildren_in_other_sessions(tmp_path):
    pids = tmp_path / "pids"
    services = [_service(f"deaf-{n}", DEAF_WITH_GRANDCHILD, str(pids)) for n in range(2)]
    with supervising(services, pids) as supervisor:
        started = _noted_pids(pids, lines=2)
        supervisor.send_signal(signal.SIGINT)
        left = _gone_by(supervisor, started, STOP_DEADLINE_S)
        output = supervisor.communicate(timeout=5)[0]

    assert left == [], f"still running: {left}\n{output}"
    assert supervisor.returncode == 0, output
    assert "SIGKILL after 1 s to" in output, output  # they ignored the SIGINT, as meant


def test_a_service_ending_on_its_own_stops_everything_and_fails(tmp_path):
    pids = tmp_path / "pids"
    services = [
        _service("steady", DEAF_WITH_GRANDCHILD, str(pids)),
        _service("crashing", DEAF_WITH_GRANDCHILD, str(pids), "3"),  # leaves an orphan behind
    ]
    with supervising(services, pids) as supervisor:
        started = _noted_pids(pids, lines=2)
        left = _gone_by(supervisor, started, STOP_DEADLINE_S + 5)
        output = supervisor.communicate(timeout=5)[0]

    assert left == [], f"still running: {left}\n{output}"
    assert supervisor.returncode == 1, output
    assert "crashing exited on its own with status 3" in output


def test_a_one_shot_service_ending_leaves_the_others_running(tmp_path):
    pids = tmp_path / "pids"
    failing_job = "import sys, time; time.sleep(0.2); sys.exit(2)"
    services = [
        _service("steady", DEAF_WITH_GRANDCHILD, str(pids)),
        _service("job", failing_job, one_shot=True),
    ]
    with supervising(services, pids) as supervisor:
        started = _noted_pids(pids, lines=1)
        time.sleep(2.0)  # the job has ended by now
        still_up = supervisor.poll() is None and all(map(_running, started))
        supervisor.send_signal(signal.SIGTERM)
        left = _gone_by(supervisor, started, STOP_DEADLINE_S)
        output = supervisor.communicate(timeout=5)[0]

    assert still_up, output
    assert "job failed (status 2); the services keep running" in output
    assert left == [] and supervisor.returncode == 0, output
