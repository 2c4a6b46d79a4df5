"""The landing shipper (:mod:`streaming.landing.shipper`) as a child process of the sidecar.

Uploading and fsyncing the ledger happen in the child, never on the sidecar's event loop or under
its GIL. :meth:`ShipperProcess.supervise` starts it, reads the state it prints (a JSON line after
each pass), starts it again whenever it exits (after a delay that doubles while it keeps dying
young), and terminates it when cancelled. On the way out the sidecar calls :meth:`drain`, which
ships what the landing sealed last (``--once``). A shipper that is down loses nothing: segments
wait sealed in the landing folder, and the next one ships them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from streaming.child_process import keep_running, terminate
from streaming.landing.shipper import INTERVAL_S, ShipperState

log = logging.getLogger(__name__)
DRAIN_TIMEOUT_S = 60.0


class ShipperProcess:
    """``python -m streaming.landing.shipper`` for one landing folder and location, supervised
    from the event loop; ``state`` is its newest report, with the errors and bytes of earlier
    children (and their unexpected exits) added, and is passed to ``on_state`` as it changes."""

    def __init__(
        self,
        source: Path,
        target: str,
        *,
        interval_s: float = INTERVAL_S,
        restart_delay_s: float = 1.0,
        max_restart_delay_s: float = 30.0,
        on_state: Callable[[ShipperState], None] = lambda state: None,
    ) -> None:
        self.source = Path(source)
        self.target = target
        self.interval_s = interval_s
        self.restart_delay_s = restart_delay_s
        self.max_restart_delay_s = max_restart_delay_s
        self.on_state = on_state
        self.state = ShipperState()
        self.restarts = 0
        self._earlier = ShipperState()  # errors and bytes of the children before this one
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The running shipper's pid (None when none runs)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def command(self, once: bool = False) -> list[str]:
        return [
            sys.executable, "-m", "streaming.landing.shipper",
            "--source", str(self.source), "--target", self.target,
            "--interval-s", str(self.interval_s), "--parent-pid", str(os.getpid()),
            *(["--once"] if once else []),
        ]  # fmt: skip

    async def supervise(self) -> None:
        """Keep a shipper running until cancelled; then terminate it."""
        try:
            await keep_running(
                lambda: self._run(self.command()), "landing shipper",
                self.restart_delay_s, self.max_restart_delay_s, self._exited,
            )  # fmt: skip
        finally:
            await self._terminate()

    def _exited(self, code: int) -> None:
        self.restarts += 1
        self._child_ended(f"landing shipper exited with {code}")

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> ShipperState:
        """Ship the backlog once (what the landing sealed on the way out) and return the state;
        a failure is logged, not raised: the segments wait for the next shipper."""
        await self._terminate()
        try:
            code = await asyncio.wait_for(self._run(self.command(once=True)), timeout_s)
            outcome = f"exit status {code}"
        except TimeoutError:
            await self._terminate()
            code, outcome = None, f"no end after {timeout_s:.0f} s"
        if code != 0:
            self._child_ended(f"shipping the last segments failed ({outcome})")
            log.error("landing shipper: %s; %s segments wait", self.state.last_error,
                      self.state.backlog)  # fmt: skip
        return self.state

    async def _run(self, command: list[str]) -> int:
        """Run one shipper to its end, taking its reports; its exit status."""
        self._process = process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        log.info("landing shipper %s → %s started (pid %s)", self.source, self.target, self.pid)
        assert process.stdout is not None
        async for line in process.stdout:
            with contextlib.suppress(ValueError, TypeError):
                self._show(ShipperState.from_json(line))
        return await process.wait()

    def _show(self, child: ShipperState) -> None:
        if child.last_error is not None and child.last_error != self.state.last_error:
            log.warning("landing shipper: %s; %s segments wait", child.last_error, child.backlog)
        self.state = dataclasses.replace(
            child,
            errors=self._earlier.errors + child.errors,
            shipped_bytes=self._earlier.shipped_bytes + child.shipped_bytes,
        )
        self.on_state(self.state)

    def _child_ended(self, error: str) -> None:
        """Count a child's end as an error and keep its totals for the next one's reports."""
        self.state = dataclasses.replace(self.state, errors=self.state.errors + 1, last_error=error)
        self._earlier = self.state
        self.on_state(self.state)

    async def _terminate(self) -> None:
        await terminate(self._process, "landing shipper")
