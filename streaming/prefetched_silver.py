"""Silver microbatches for fallback level 4 without blocking the sidecar's event loop.

An Iceberg read takes far longer than a tick, so :class:`PrefetchedSilver` answers from the
newest microbatch already fetched for the symbol and refreshes it in a worker thread. Left at
that, the first time a symbol needs silver it would get nothing and report "no trades" until the
controller's next pull (``silver_retry_s`` later); the sidecar therefore calls
:meth:`PrefetchedSilver.prefetch` when it starts and whenever a symbol loses its live data, so
the microbatch is there (or on its way) before level 4 asks for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import polars as pl

from streaming.config import SidecarConfig
from streaming.fallback import SilverFeatures, SilverSource
from trading_assets.lib.settings import local_catalog, sqlite_file

log = logging.getLogger(__name__)


class PrefetchedSilver:
    """A silver source that never blocks the loop: a call returns the newest microbatch fetched
    for the symbol (empty until one arrives) and starts a fetch in a thread when none is
    running. The controller's own rate limit decides how often it asks."""

    def __init__(self, source: SilverSource) -> None:
        self.source = source
        self._frames: dict[str, pl.DataFrame | SilverFeatures] = {}
        self._busy: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, symbol: str, start_ns: int, end_ns: int) -> pl.DataFrame | SilverFeatures:
        with self._cond:
            frame = self._frames.get(symbol, pl.DataFrame())
            self._start(symbol, start_ns, end_ns)
        return frame

    def prefetch(self, symbol: str, start_ns: int, end_ns: int) -> None:
        """Fetch the symbol's microbatch now, in a thread, unless a fetch is running."""
        with self._cond:
            self._start(symbol, start_ns, end_ns)

    def close(self) -> None:
        """Release the source (its worker process, when it has one)."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()

    def wait_fetched(self, symbol: str, timeout: float) -> bool:
        """Wait until no fetch of the symbol runs; True when none does (False on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while symbol in self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _start(self, symbol: str, start_ns: int, end_ns: int) -> None:
        if symbol in self._busy:
            return
        self._busy.add(symbol)
        threading.Thread(
            target=self._fetch, args=(symbol, start_ns, end_ns), name=f"silver-{symbol}",
            daemon=True,
        ).start()  # fmt: skip

    def _fetch(self, symbol: str, start_ns: int, end_ns: int) -> None:
        try:
            frame = self.source(symbol, start_ns, end_ns)
            with self._cond:
                self._frames[symbol] = frame
        except Exception:
            log.exception("silver microbatch for %s failed", symbol)
        finally:
            with self._cond:
                self._busy.discard(symbol)
                self._cond.notify_all()


def open_silver(config: SidecarConfig, names: Sequence[str]) -> PrefetchedSilver | None:
    """Silver microbatches from the local catalog (or ``iceberg_catalog_uri``), when present,
    each read and recomputed into ``names`` in a worker process (see :mod:`streaming.silver_pull`).
    """
    from streaming.silver_pull import SubprocessSilver

    local_uri, local_warehouse = local_catalog(config.data_root / "iceberg")
    uri = config.iceberg_catalog_uri or local_uri
    if uri.startswith("sqlite:///") and not sqlite_file(uri).exists():
        return None  # nothing ingested yet on this machine
    return PrefetchedSilver(
        SubprocessSilver(uri, config.iceberg_warehouse or local_warehouse, names)
    )
