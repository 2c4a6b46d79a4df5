"""Counters of the market feed, plain numbers for logs and Prometheus metrics.

Every frame is parsed or dead-lettered: ``frames_parsed`` is what is left of
``frames_received`` after ``frames_dead_lettered``.
Every trade offered is either released or dropped as already seen:
``trades_from_stream + trades_gap_filled == trades_released + trades_pending`` (held behind a
gap), with repeats counted apart in ``trades_duplicate``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UnfilledGap:
    """Trade ids the feed gave up on (REST could not serve them, or too many to fetch)."""

    symbol: str
    first_id: int
    last_id: int
    reason: str


@dataclass(slots=True)  # slots: the feed updates a few counters per frame
class FeedStats:
    """What the feed has seen and done since it started (mutated in place by the feed)."""

    frames_received: int = 0
    frames_dead_lettered: int = 0
    trades_from_stream: int = 0
    trades_gap_filled: int = 0
    trades_duplicate: int = 0
    trades_released: int = 0
    trades_pending: int = 0
    trades_skipped: int = 0
    book_tickers_stale: int = 0
    gap_fills: int = 0
    gap_fill_failures: int = 0
    connections_opened: int = 0
    # Why each (re)connection was needed: dropped, server_closed, watchdog, max_age,
    # rate_limited (429/418 handshake), connect_failed.
    reconnects: Counter[str] = field(default_factory=Counter)
    unfilled_gaps: list[UnfilledGap] = field(default_factory=list)

    @property
    def frames_parsed(self) -> int:
        """Frames that became records (or were dropped as repeats): the ones not dead-lettered."""
        return self.frames_received - self.frames_dead_lettered
