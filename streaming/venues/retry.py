"""How a venue's REST client retries: bounded, with jittered backoff, honouring Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; a ``Retry-After`` beyond ``max_retry_after`` is final."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given (1-based) failed attempt."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def retry_after(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds the exchange asked us to wait, None when that is longer than we may wait.

        Retrying sooner than asked is what turns a 429 into an IP ban (418), so a wait beyond
        ``max_retry_after`` gives up instead of being shortened.
        """
        try:
            seconds = max(0.0, float(response.headers.get("Retry-After", "")))
        except ValueError:
            return self.backoff(attempt)
        return seconds if seconds <= self.max_retry_after else None
