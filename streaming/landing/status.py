"""What the sidecar says of its landing's disk: free space, and why landing is paused if it is."""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from streaming.landing.disk import DEFAULT_MIN_FREE, DiskSpace, MinFree, human_bytes

MIN_FREE_VARIABLE = "TRADING_LANDING_MIN_FREE"
KEPT_GAPS = 100  # the newest unfilled gaps kept in the status (the metrics count them all)


@dataclass(frozen=True)
class LandingGap:
    """Trades ``first_id..last_id`` of ``instrument`` that a paused landing missed and could not
    fetch again (``reason``): traded after ``after_ns`` (the last landed trade's time; None when
    unknown) up to ``until_ns`` (trade ``last_id``'s time), nanoseconds since the epoch."""

    instrument: str
    first_id: int
    last_id: int
    after_ns: int | None
    until_ns: int | None
    reason: str

    @property
    def trades(self) -> int:
        """How many trades are missing."""
        return self.last_id - self.first_id + 1

    def text(self) -> str:
        """The gap in words, for logs: which trades and which stretch of time are missing."""
        after, until = _instant(self.after_ns), _instant(self.until_ns)
        return (
            f"{self.instrument} trades {self.first_id}..{self.last_id} ({self.trades} trades, "
            f"after {after} up to {until}) not landed: {self.reason}"
        )


def _instant(ns: int | None) -> str:
    if ns is None:
        return "an unknown time"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class LandingStatus:
    """The landing's state as :class:`~streaming.landing.guard.LandingGuard` last saw it; read
    by ``/ready`` (its :meth:`reasons`) and mirrored in ``/metrics``."""

    root: Path
    min_free: MinFree = field(default_factory=lambda: MinFree.parse(DEFAULT_MIN_FREE))
    space: DiskSpace | None = None  # None until first measured
    paused: str | None = None  # why market data is not landing now
    unlanded_trades: int = 0  # handed to landing while paused: fetched again on resume
    unrecorded_starts: tuple[str, ...] = ()  # symbols whose run start is not on disk yet
    # Missed trades no venue could serve again (the newest KEPT_GAPS): a hole in the landed run
    unfilled_gaps: deque[LandingGap] = field(default_factory=lambda: deque(maxlen=KEPT_GAPS))

    @property
    def low(self) -> bool:
        """Whether free space is below the minimum landing keeps."""
        space = self.space
        return space is not None and space.free_bytes < self.min_free.bytes_of(space)

    def space_text(self) -> str:
        if self.space is None:
            return f"free space under {self.root} not measured yet"
        free = self.space.free_bytes
        return (
            f"{human_bytes(free)} ({self.space.free_fraction:.1%}) free under {self.root}, "
            f"minimum {self.min_free} ({MIN_FREE_VARIABLE})"
        )

    def reasons(self) -> tuple[str, ...]:
        """Why the landing keeps the sidecar from being ready (empty: it does not)."""
        reasons: list[str] = []
        if self.paused is not None:
            reasons.append(
                f"landing paused: {self.paused}; {self.space_text()}; {self.unlanded_trades} "
                "trades to fetch again once it resumes (predictions are still served)"
            )
        elif self.low:
            reasons.append(f"landing disk low: {self.space_text()}")
        if self.unrecorded_starts:
            reasons.append(
                f"run start of {', '.join(self.unrecorded_starts)} not recorded under "
                f"{self.root} yet (disk full)"
            )
        return tuple(reasons)
