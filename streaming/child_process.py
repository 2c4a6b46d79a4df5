"""Keeping alive and ending a child process the sidecar supervises (the model watcher, the
landing shipper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

log = logging.getLogger(__name__)

TERMINATE_GRACE_S = 5.0  # time to finish what it is doing (an upload, a registry poll)
HEALTHY_RUN_S = 60.0  # a child that lived this long starts the restart delay over


async def keep_running(
    run: Callable[[], Awaitable[int]],
    name: str,
    restart_delay_s: float,
    max_restart_delay_s: float,
    on_exit: Callable[[int], None],
) -> NoReturn:
    """Await ``run`` (one child, to its end; its exit status) again whenever it ends, until
    cancelled; ``on_exit`` hears each exit status. The delay before a restart doubles while the
    child keeps dying young, so a child that cannot start does not spin."""
    delay = restart_delay_s
    while True:
        started = time.monotonic()
        code = await run()
        if time.monotonic() - started >= HEALTHY_RUN_S:
            delay = restart_delay_s
        on_exit(code)
        log.warning("%s exited with %s; restarting in %.0f s", name, code, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_restart_delay_s)


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
