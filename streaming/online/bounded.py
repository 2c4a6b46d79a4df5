"""Online-store reads that never hold the event loop for longer than the fallback would wait.

The sidecar reads each symbol's vector on its event loop, once a tick. On a healthy store a read
takes well under a millisecond, but on a store that is down it takes as long as its client's
retries: redis-py sleeps between reconnect attempts, 10 to 12 s a read on a stopped Redis. On the
loop, that froze the API, the predictions and the market feed for the whole outage.

:class:`BoundedOnlineReader` runs every read on a worker thread of its own and waits for it at
most ``wait_s``, the latency above which the fallback controller refuses a read anyway
(``online_max_latency_s``). A read that does not answer in time is left to finish on its worker;
until it does, every read fails at once with :class:`OnlineStoreUnavailable`, whose message is
the reason the controller records (level 1 skipped, level 2 and below serve from memory). A read
that fails fails the same way, with the client's error. The first read to answer ends the
outage. One read is in flight at a time, so a dead store costs one thread, not one per tick.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from prometheus_client import CollectorRegistry, Counter, Gauge

from trading_assets.lib.feature_store.online_reader import OnlineRead

log = logging.getLogger(__name__)

ReadFn = Callable[[str], OnlineRead | None]


class OnlineStoreUnavailable(RuntimeError):
    """The online store did not answer a read in time, or failed it: the message says which."""


class OnlineStoreHealth:
    """What ``/metrics`` shows of the online store as the sidecar's reads found it."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.up = Gauge(
            "sidecar_online_store_up",
            "1 while the online store answers reads in time, 0 during an outage",
            registry=registry,
        )
        self.failures = Counter(
            "sidecar_online_read_failures",
            "Online-store reads that failed or did not answer in time",
            ["cause"],
            registry=registry,
        )
        self.up.set(1)


class BoundedOnlineReader:
    """``read(symbol)`` as the fallback controller's online source: ``read`` run on a worker and
    waited for ``wait_s`` (the controller's latency budget) plus one GIL switch interval."""

    def __init__(
        self,
        read: ReadFn,
        wait_s: float,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = read
        """The wrapped read itself, for a caller off the event loop."""
        # The hop to the worker can wait one GIL switch interval behind another busy thread.
        self.wait_s = wait_s + sys.getswitchinterval()
        self._clock = clock
        self.health = OnlineStoreHealth(registry)
        self._requests: queue.SimpleQueue[tuple[Future[OnlineRead | None], str] | None] = (
            queue.SimpleQueue()
        )
        self._unanswered: tuple[Future[OnlineRead | None], str, float] | None = None
        self._closed = False
        self.outage: str | None = None
        """Why the store is taken as down (None while it answers)."""
        # A daemon: a read stuck in the client's retries must not hold up the process' exit.
        self._worker = threading.Thread(target=self._serve, name="online-reader", daemon=True)
        self._worker.start()

    def read(self, symbol: str) -> OnlineRead | None:
        """The symbol's newest vector, or :class:`OnlineStoreUnavailable` within ``wait_s``."""
        if self._closed:
            raise OnlineStoreUnavailable("online reader closed")
        if self._unanswered is not None:
            late, waiting_for, since = self._unanswered
            if not late.done():
                raise OnlineStoreUnavailable(
                    f"online store has not answered a read of {waiting_for} "
                    f"for {self._clock() - since:.1f} s"
                )
            self._unanswered = None
            self._settle(late)  # its answer is old news; whether it failed is not
        future: Future[OnlineRead | None] = Future()
        self._requests.put((future, symbol))
        try:
            answer = future.result(timeout=self.wait_s)
        except FutureTimeout:
            self._unanswered = (future, symbol, self._clock())
            self._down("timeout", f"no answer in {self.wait_s * 1e3:.0f} ms")
            raise OnlineStoreUnavailable(
                f"online store did not answer in {self.wait_s * 1e3:.0f} ms"
            ) from None
        except Exception as error:
            reason = _describe(error)
            self._down("error", reason)
            raise OnlineStoreUnavailable(f"online store read failed: {reason}") from error
        self._up()
        return answer

    __call__ = read

    def close(self) -> None:
        """Stop the worker after the read it is in, if any (it is not waited for); reads
        after this fail at once."""
        self._closed = True
        self._requests.put(None)

    def _settle(self, future: Future[OnlineRead | None]) -> None:
        error = future.exception()
        if error is None:
            self._up()
        else:
            self._down("error", _describe(error))

    def _down(self, cause: str, reason: str) -> None:
        self.health.failures.labels(cause).inc()
        if self.outage is None:
            log.warning("online store unavailable: %s", reason)
        self.outage = reason
        self.health.up.set(0)

    def _up(self) -> None:
        if self.outage is not None:
            log.info("online store answers again (was: %s)", self.outage)
        self.outage = None
        self.health.up.set(1)

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            future, symbol = request
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self.source(symbol))
            except BaseException as error:  # handed to the reader, which reports it
                future.set_exception(error)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
