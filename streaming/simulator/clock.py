"""Market clocks for the simulator: start the synthetic market at a chosen instant, optionally
running faster than the wall clock so tests see a busy market without generating huge days."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable


def market_clock(
    start: dt.datetime, speed: float = 1.0, wall_ns: Callable[[], int] = time.monotonic_ns
) -> Callable[[], int]:
    """A ``clock_ns`` for :class:`SimulatorServer` reading ``start`` now and ``speed``× after.

    The same clock paces the live streams and bounds what REST serves, so a client that
    gap-fills by trade id sees one consistent market whatever the speed.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    if start.tzinfo is None:
        raise ValueError("start must be timezone aware")
    start_ns = int(start.timestamp()) * 1_000_000_000 + start.microsecond * 1000
    origin = wall_ns()

    def now_ns() -> int:
        return start_ns + int((wall_ns() - origin) * speed)

    return now_ns
