"""How late the sidecar's event loop runs, and what blocked it when it stalls.

Everything the sidecar serves (the feed, predictions, ``/health``) shares one asyncio loop, so a
call that holds it (a slow read, a lock, a thread hogging the GIL) delays all of them at once.
:class:`LoopWatch` measures the loop's lateness with a task that sleeps ``interval_s`` and times
its own wake-up (``sidecar_event_loop_lag_seconds``). A separate thread checks that task's
heartbeat: when the loop has not run it for ``stall_s``, the thread logs the loop thread's
current Python stack once per stall and counts it (``sidecar_event_loop_stalls``), so the log
says where the time went rather than only that a probe timed out.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from prometheus_client import CollectorRegistry, Counter, Histogram

log = logging.getLogger(__name__)
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopWatch:
    """Loop lag histogram and stall reports for the loop that runs :meth:`run`."""

    def __init__(
        self, registry: CollectorRegistry, interval_s: float = 0.1, stall_s: float = 1.0
    ) -> None:
        if interval_s <= 0 or stall_s <= interval_s:
            raise ValueError("interval_s must be > 0 and stall_s > interval_s")
        self.interval_s = interval_s
        self.stall_s = stall_s
        self.lag = Histogram(
            "sidecar_event_loop_lag_seconds",
            "How late the event loop woke a task due after a fixed sleep",
            buckets=LAG_BUCKETS_S,
            registry=registry,
        )
        self.stalls = Counter(
            "sidecar_event_loop_stalls",
            "Times the event loop ran nothing for longer than the stall threshold",
            registry=registry,
        )
        self.last_stack: str | None = None
        self._heartbeat = time.monotonic()
        self._loop_thread: int | None = None
        self._stop = threading.Event()

    async def run(self) -> None:
        """Measure lag until cancelled; the stall watcher thread lives as long as this task."""
        self._loop_thread = threading.get_ident()
        self._heartbeat = time.monotonic()
        self._stop.clear()
        watcher = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        watcher.start()
        try:
            while True:
                before = time.monotonic()
                await asyncio.sleep(self.interval_s)
                self._heartbeat = now = time.monotonic()
                self.lag.observe(max(0.0, now - before - self.interval_s))
        finally:
            self._stop.set()
            watcher.join()

    def _watch(self) -> None:
        reported_beat: float | None = None
        while not self._stop.wait(self.interval_s):
            beat = self._heartbeat
            blocked_s = time.monotonic() - beat
            if blocked_s < self.stall_s or beat == reported_beat:
                continue
            reported_beat = beat  # one report per stall, however long it lasts
            frame = sys._current_frames().get(self._loop_thread or -1)
            stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
            self.last_stack = stack
            self.stalls.inc()
            log.warning("event loop blocked for %.1f s so far, running:\n%s", blocked_s, stack)
