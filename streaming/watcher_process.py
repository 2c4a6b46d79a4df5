"""The model watcher (:mod:`streaming.model_watcher`) as a child process of the sidecar.

:meth:`WatcherProcess.supervise` starts it, starts it again whenever it exits (after a delay
that doubles while it keeps dying young, so a watcher that cannot start does not spin), and
terminates it when cancelled, which is how the sidecar's shutdown ends it. While the watcher is
down the sidecar keeps serving whatever it loaded; alias moves wait for the next watcher.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from streaming.child_process import keep_running, terminate

log = logging.getLogger(__name__)


class WatcherProcess:
    """``python -m streaming.model_watcher`` for one model, supervised from the event loop."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        directory: Path,
        poll_s: float,
        *,
        restart_delay_s: float = 1.0,
        max_restart_delay_s: float = 30.0,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.directory = directory
        self.poll_s = poll_s
        self.restart_delay_s = restart_delay_s
        self.max_restart_delay_s = max_restart_delay_s
        self.restarts = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The running watcher's pid (None before the first start and after shutdown)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "streaming.model_watcher",
            "--tracking-uri", self.tracking_uri,
            "--model-name", self.model_name,
            "--dir", str(self.directory),
            "--poll-s", str(self.poll_s),
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip

    async def supervise(self) -> None:
        """Keep a watcher running until cancelled; then terminate it."""
        try:
            await keep_running(
                self._run, "model watcher", self.restart_delay_s, self.max_restart_delay_s,
                self._exited,
            )  # fmt: skip
        finally:
            await self._terminate()

    async def _run(self) -> int:
        # Its stdout joins the sidecar's log stream (stderr): the sidecar's stdout is left to
        # the sidecar.
        self._process = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=2
        )
        log.info("model watcher for %s started (pid %s)", self.model_name, self.pid)
        return await self._process.wait()

    def _exited(self, code: int) -> None:
        self.restarts += 1

    async def _terminate(self) -> None:
        await terminate(self._process, "model watcher")
