"""Reconnect pacing: exponential backoff with full jitter, never sooner than the exchange asked."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays between reconnect attempts.

    Attempt n (1-based, counting consecutive failures) waits a uniformly random time in
    ``[0, min(max_s, initial_s * multiplier ** (n - 1))]``; full jitter spreads many clients
    reconnecting after the same outage. A ``Retry-After`` from the exchange is a floor, since
    reconnecting sooner is what turns a 429 into an IP ban (418).
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    failures: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError("need 0 <= initial_s <= max_s and multiplier >= 1")

    def next_delay(self, retry_after_s: float | None = None) -> float:
        """Seconds to wait before the next attempt; counts one more consecutive failure."""
        self.failures += 1
        ceiling = min(self.max_s, self.initial_s * self.multiplier ** (self.failures - 1))
        delay = random.uniform(0.0, ceiling)
        return max(delay, retry_after_s) if retry_after_s is not None else delay

    def reset(self) -> None:
        """A connection proved healthy: the next failure starts from ``initial_s`` again."""
        self.failures = 0
