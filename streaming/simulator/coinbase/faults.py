"""Faults of Coinbase's protocol that the simulator's shared plan has no word for.

The shared :class:`~streaming.simulator.binance.faults.FaultPlan` (``SimulatorServer.set_faults``,
``/_sim/faults``) applies to the Coinbase connections as it does to Binance's: dropped
connections, stalls, malformed, truncated, duplicated and reordered frames, rejected handshakes.
What it cannot say is "lose one message without a trace", which on Coinbase shows as a jump in
``sequence_num``; this plan says it (``CoinbaseEndpoint.set_faults``,
``/_sim/coinbase/faults``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class CoinbaseFaultPlan:
    """What to break. ``None`` disables a fault; messages are counted per connection."""

    skip_sequence_after_messages: int | None = None
    """A connection that has sent this many messages numbers its next one a step too far (a
    message lost upstream: the client sees ``sequence_num`` jump), once."""
    skip_sequence_next: int = 1
    """How many more connections the skip may hit (each one that skips counts it down)."""


FAULT_FIELDS = frozenset(field.name for field in dataclasses.fields(CoinbaseFaultPlan))
_NULLABLE = frozenset({"skip_sequence_after_messages"})


class CoinbaseFaults:
    """Holds the current plan and counts each fault as it is applied."""

    def __init__(self) -> None:
        self.plan = CoinbaseFaultPlan()
        self.applied: Counter[str] = Counter()

    def update(self, **changes: Any) -> CoinbaseFaultPlan:
        """Merge ``changes`` into the plan; unknown names or values that are not numbers raise
        ``ValueError``."""
        unknown = set(changes) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown Coinbase fault settings: {sorted(unknown)}")
        for name, value in changes.items():
            if value is None and name in _NULLABLE:
                continue
            if type(value) is not int or value < 0:
                nullable = " or null" if name in _NULLABLE else ""
                raise ValueError(f"Coinbase fault setting {name} must be a count >= 0{nullable}")
        self.plan = dataclasses.replace(self.plan, **changes)
        return self.plan

    def clear(self) -> None:
        """Back to no faults, counters reset."""
        self.plan = CoinbaseFaultPlan()
        self.applied.clear()

    def as_dict(self) -> dict[str, Any]:
        """The plan and the counters, as JSON-ready dicts."""
        return {"plan": dataclasses.asdict(self.plan), "applied": dict(self.applied)}

    def take_sequence_skip(self, sent: int) -> bool:
        """True when a connection that has sent ``sent`` messages (and skipped none) must skip
        a sequence number now; the skip is counted and one fewer remains."""
        plan = self.plan
        after = plan.skip_sequence_after_messages
        if after is None or sent < after or plan.skip_sequence_next <= 0:
            return False
        plan.skip_sequence_next -= 1
        self.applied["sequence_skipped"] += 1
        return True
