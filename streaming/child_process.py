"""Ending a child process the sidecar supervises (the model watcher, the landing shipper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

TERMINATE_GRACE_S = 5.0  # time to finish what it is doing (an upload, a registry poll)


async def terminate(
    process: asyncio.subprocess.Process | None, name: str, grace_s: float = TERMINATE_GRACE_S
) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns once the child is reaped."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace_s)
    except TimeoutError:
        log.warning("%s (pid %s) ignored SIGTERM: killing it", name, process.pid)
        process.kill()
        await process.wait()
