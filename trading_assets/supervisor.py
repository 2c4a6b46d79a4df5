"""Run services as children and end every process they start, whatever their signal handling.

Every service runs in its own session, so signals meant for the whole reach the supervisor alone;
on SIGINT, SIGTERM or SIGHUP it sends SIGINT to each service's process group, waits up to a grace
period for every descendant to exit, then SIGKILLs the groups and every descendant left (a second
signal skips the wait). Descendants that leave their group or lose their parent are still found:
the supervisor is their subreaper, so orphans are re-parented to it rather than to init. When it
runs in a terminal's foreground, it takes the terminal's foreground for its own process group, so
a Ctrl-C reaches it and not the parent that started it (``make`` re-raises a SIGINT on itself
and fails, whatever its recipe's status); it hands the terminal back before returning.
Linux only (``/proc``, ``prctl``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

GRACE_S = 6.0
KILL_WAIT_S = 2.0
POLL_S = 0.1  # while stopping
WATCH_S = 0.5  # while running: the longest a stop signal waits to be acted on
ORPHAN_SCAN_EVERY = 4  # watch rounds between scans of /proc (~10 ms each) for orphans to reap
PORT_TIMEOUT_S = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_CHILD_SUBREAPER = 36


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


# --- the process table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessInfo:
    ppid: int
    pgid: int
    zombie: bool
    start_ticks: int  # with the pid, names one process even after the pid is reused


def process_info(pid: int) -> ProcessInfo | None:
    """``/proc/<pid>/stat``'s parent, process group, state and start time (None: no such pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    state, ppid, pgid, start_ticks = fields[0], int(fields[1]), int(fields[2]), int(fields[19])
    return ProcessInfo(ppid, pgid, zombie=state in ("Z", "X"), start_ticks=start_ticks)


def process_table() -> dict[int, ProcessInfo]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := process_info(int(entry.name))) is not None:
            table[int(entry.name)] = info
    return table


def descendants(root: int, table: dict[int, ProcessInfo] | None = None) -> dict[int, ProcessInfo]:
    """Every descendant of ``root`` that has not exited (zombies excluded)."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    found, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            stack.append(child)
            if not table[child].zombie:
                found[child] = table[child]
    return found


def still_running(pid: int, known: ProcessInfo) -> bool:
    now = process_info(pid)
    return now is not None and not now.zombie and now.start_ticks == known.start_ticks


def become_subreaper() -> None:
    """Have orphaned descendants re-parented to this process rather than to init."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Make this process's own group the terminal's foreground group, if it is in the foreground.

    A terminal sends Ctrl-C's SIGINT to its foreground group; left in ``make``'s group, ``make``
    would get it too and end with it whatever its recipe's status."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:  # no controlling terminal
        yield
        return
    try:
        try:
            previous = os.tcgetpgrp(tty)
        except OSError:
            previous = -1
        if previous != os.getpgrp():  # started in the background: the terminal is not ours
            yield
            return
        # A background group changing the foreground would get SIGTTOU, which stops it.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            if os.getpgrp() != os.getpid():
                os.setpgid(0, 0)
            os.tcsetpgrp(tty, os.getpgrp())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTTOU})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
            with contextlib.suppress(OSError):
                os.tcsetpgrp(tty, previous)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTTOU})
    finally:
        os.close(tty)


@dataclass(frozen=True)
class Service:
    """A command the supervisor runs, with what it adds to the environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    one_shot: bool = False  # finishes on its own (the bootstrap): its end stops nothing
    log: Path | None = None  # None: this process's stdout and stderr
    # Start the next service once this (host, port) accepts connections, or the wait times out.
    listens_on: tuple[str, int] | None = None


# --- supervision ---------------------------------------------------------------------------------


@dataclass
class Started:
    service: Service
    process: subprocess.Popen[bytes]
    finished: bool = False  # a one-shot service that ended


class Supervisor:
    """Starts services in their own sessions and ends every process they start."""

    def __init__(self, services: list[Service], grace_s: float = GRACE_S) -> None:
        self.services = services
        self.grace_s = grace_s
        self.started: list[Started] = []
        self.stop_signal: int | None = None
        self.forced = False
        self._logs: list[IO[bytes]] = []

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.forced = self.stop_signal is not None
        self.stop_signal = signum

    def run(self, started_message: str = "") -> int:
        """Start, watch until a stop signal or a service's end, stop; the exit status."""
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        become_subreaper()
        try:
            with terminal_foreground():
                failure = self._start_all()
                if failure is None and self.stop_signal is None:
                    if started_message:
                        print(started_message, flush=True)
                    failure = self._watch()
                self.stop()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            for log in self._logs:
                log.close()
        if failure is not None:
            say(f"{failure}; everything else was stopped")
            return 1
        say("stopped")
        return 0

    def _start_all(self) -> str | None:
        for service in self.services:
            if self.stop_signal is not None:
                return None
            self.started.append(Started(service, self._spawn(service)))
            if service.listens_on is not None and (failure := self._await_port(service)):
                return failure
        return None

    def _spawn(self, service: Service) -> subprocess.Popen[bytes]:
        output: IO[bytes] | None = None
        if service.log is not None:
            service.log.parent.mkdir(parents=True, exist_ok=True)
            output = service.log.open("ab")
            self._logs.append(output)
        return subprocess.Popen(
            service.argv,
            env=os.environ | service.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )

    def _await_port(self, service: Service) -> str | None:
        """Wait for ``service`` to listen; a failure message if it exited meanwhile."""
        process, deadline = self.started[-1].process, time.monotonic() + PORT_TIMEOUT_S
        while self.stop_signal is None and service.listens_on is not None:
            if process.poll() is not None:
                return f"{service.name} exited with status {process.returncode} at start"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(service.listens_on, timeout=1.0),
            ):
                return None
            if time.monotonic() > deadline:
                host, port = service.listens_on
                say(f"{service.name} is not listening on {host}:{port} yet; starting the others")
                return None
            time.sleep(WATCH_S)
        return None

    def _watch(self) -> str | None:
        rounds = 0
        while self.stop_signal is None:
            for entry in self.started:
                if entry.finished or entry.process.poll() is None:
                    continue
                status = entry.process.returncode
                if not entry.service.one_shot:
                    return f"{entry.service.name} exited on its own with status {status}"
                entry.finished = True
                if status != 0:
                    say(f"{entry.service.name} failed (status {status}); the services keep running")
            rounds += 1
            if rounds % ORPHAN_SCAN_EVERY == 0:
                self._reap_orphans(process_table())
            time.sleep(WATCH_S)
        return None

    def _reap_orphans(self, table: dict[int, ProcessInfo]) -> None:
        """Collect the exit status of re-parented orphans (children that are not services)."""
        ours = {entry.process.pid for entry in self.started}
        for pid, info in table.items():
            if info.ppid == os.getpid() and info.zombie and pid not in ours:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def stop(self) -> None:
        """SIGINT to every service's group; SIGKILL to whatever is left after the grace period."""
        known = descendants(os.getpid())
        running = [e for e in self.started if e.process.returncode is None]
        if running:
            say(f"stopping {', '.join(e.service.name for e in running)}")
        groups = {e.process.pid for e in running}
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGINT)
        for pid, info in known.items():  # strays: descendants that left their service's group
            if info.pgid not in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        if self._await_exit(known, self.grace_s):
            return
        left = self._left(known, process_table())
        say(f"SIGKILL after {self.grace_s:g} s to {self._describe(left)}")
        for entry in self.started:
            if entry.process.returncode is None:  # unreaped: its group id is still its own
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(entry.process.pid, signal.SIGKILL)
        for pid, info in left.items():
            if still_running(pid, info):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.forced = False
        self._await_exit(left, KILL_WAIT_S)

    def _describe(self, processes: dict[int, ProcessInfo]) -> str:
        """``dagster (4), mlflow (1)``: how many processes of each service are still running."""
        by_group = {entry.process.pid: entry.service.name for entry in self.started}
        counts: dict[str, int] = {}
        for info in processes.values():
            name = by_group.get(info.pgid, "other")
            counts[name] = counts.get(name, 0) + 1
        return ", ".join(f"{name} ({n})" for name, n in counts.items())

    def _left(
        self, known: dict[int, ProcessInfo], table: dict[int, ProcessInfo]
    ) -> dict[int, ProcessInfo]:
        alive = {pid: info for pid, info in known.items() if still_running(pid, info)}
        return alive | descendants(os.getpid(), table)

    def _await_exit(self, known: dict[int, ProcessInfo], timeout_s: float) -> bool:
        """Wait until ``known`` and every descendant have exited; False at the timeout or when a
        second stop signal asks for no more waiting."""
        deadline = time.monotonic() + timeout_s
        while True:
            for entry in self.started:
                entry.process.poll()
            table = process_table()
            self._reap_orphans(table)
            if not self._left(known, table):
                return True
            if self.forced or time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
