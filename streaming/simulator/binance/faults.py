"""Fault injection for the simulator: a plain plan of what to break, and counters of what broke.

WebSocket faults apply per connection, counting the messages taken off that connection's queue;
HTTP faults are consumed by the next ``n`` REST or bulk-file requests.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class FaultPlan:
    """What to break. ``None``/0 disables a fault; "every k" counts messages per connection."""

    drop_after_messages: int | None = None  # abort the TCP connection after N messages
    stall_after_messages: int | None = None  # then send nothing for stall_seconds (once)
    stall_seconds: float = 0.0
    malformed_every: int | None = None  # every k-th message replaced by invalid JSON
    truncated_every: int | None = None  # every k-th message cut in half
    duplicate_every: int | None = None  # every k-th message sent twice
    reorder_every: int | None = None  # every k-th message swapped with the one after it
    http_429_next: int = 0  # the next n HTTP requests get 429 + Retry-After
    retry_after_seconds: int = 1
    http_5xx_next: int = 0  # the next n HTTP requests get http_5xx_status
    http_5xx_status: int = 503
    ws_429_next: int = 0  # the next n WebSocket handshakes get 429 + Retry-After


_TOO_MANY_REQUESTS = (
    b'{"code":-1003,"msg":"Too many requests; current limit of IP(127.0.0.1) is 6000 '
    b"requests per minute. Please use WebSocket Streams for live updates to avoid "
    b'polling the API."}'
)
FAULT_FIELDS = frozenset(field.name for field in dataclasses.fields(FaultPlan))


class FaultInjector:
    """Holds the current plan and counts each fault as it is applied."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self.applied: Counter[str] = Counter()

    def update(self, **changes: Any) -> FaultPlan:
        """Merge ``changes`` into the plan; unknown names raise ``ValueError``."""
        unknown = set(changes) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        for name, value in changes.items():
            if value is not None and not isinstance(value, int | float):
                raise ValueError(f"fault setting {name} must be a number or null")
        self.plan = dataclasses.replace(self.plan, **changes)
        return self.plan

    def clear(self) -> None:
        """Back to no faults, counters reset."""
        self.plan = FaultPlan()
        self.applied.clear()

    def as_dict(self) -> dict[str, Any]:
        """The plan and the counters, as JSON-ready dicts."""
        return {"plan": dataclasses.asdict(self.plan), "applied": dict(self.applied)}

    def take_http_fault(self) -> tuple[int, dict[str, str], bytes] | None:
        """The (status, headers, body) to answer instead of the real response, if any is due."""
        plan = self.plan
        if plan.http_429_next > 0:
            plan.http_429_next -= 1
            self.applied["http_429"] += 1
            return 429, {"Retry-After": str(plan.retry_after_seconds)}, _TOO_MANY_REQUESTS
        if plan.http_5xx_next > 0:
            plan.http_5xx_next -= 1
            self.applied["http_5xx"] += 1
            body = b'{"code":-1001,"msg":"Internal error; unable to process your request."}'
            return plan.http_5xx_status, {}, body
        return None

    def take_ws_handshake_fault(self) -> tuple[int, dict[str, str], bytes] | None:
        """The (status, headers, body) rejecting a WebSocket handshake, if one is due."""
        plan = self.plan
        if plan.ws_429_next > 0:
            plan.ws_429_next -= 1
            self.applied["ws_429"] += 1
            return 429, {"Retry-After": str(plan.retry_after_seconds)}, _TOO_MANY_REQUESTS
        return None


def _every(k: int | None, ordinal: int) -> bool:
    return bool(k) and ordinal % int(k or 1) == 0


class ConnectionFaults:
    """Per-connection fault state: turns each queued message into what is actually sent."""

    def __init__(self, injector: FaultInjector) -> None:
        self._injector = injector
        self._ordinal = 0
        self._stalled = False
        self._held: list[bytes] = []

    def should_drop(self) -> bool:
        """True when the connection is due to be cut."""
        limit = self._injector.plan.drop_after_messages
        if limit is not None and self._ordinal >= limit:
            self._injector.applied["dropped"] += 1
            return True
        return False

    def stall_seconds(self) -> float:
        """How long to pause before the next message (once per connection)."""
        plan = self._injector.plan
        due = plan.stall_after_messages is not None and self._ordinal >= plan.stall_after_messages
        if due and not self._stalled and plan.stall_seconds > 0:
            self._stalled = True
            self._injector.applied["stalled"] += 1
            return plan.stall_seconds
        return 0.0

    def outgoing(self, message: bytes) -> list[bytes]:
        """Messages to send now for one message taken off the queue (possibly none)."""
        self._ordinal += 1
        plan, applied, n = self._injector.plan, self._injector.applied, self._ordinal
        out = message
        if _every(plan.malformed_every, n):
            out = b"<<malformed>> " + message
            applied["malformed"] += 1
        elif _every(plan.truncated_every, n):
            out = message[: len(message) // 2]
            applied["truncated"] += 1
        batch = [out]
        if _every(plan.duplicate_every, n):
            batch.append(out)
            applied["duplicated"] += 1
        if _every(plan.reorder_every, n) and not self._held:
            self._held = batch
            applied["reordered"] += 1
            return []
        batch += self.flush()
        return batch

    def flush(self) -> list[bytes]:
        """Messages still held back for reordering (sent before a normal close)."""
        held, self._held = self._held, []
        return held
