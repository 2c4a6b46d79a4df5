"""What rollout decisions are made of: the policy, the registry state, the evidence, the decision.

Shared by the steps in :mod:`trading_assets.lib.models.rollout` (promotion) and
:mod:`trading_assets.lib.models.rollback` (a breaching champion), plus the breach criteria and
the tag helpers both use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from trading_assets.lib.models.live_metrics import NS, RoleMetrics

STATUS_TAG = "rollout.status"
PREVIOUS_CHAMPION_TAG = "rollout.previous_champion"
# Registered-model tag: the champion withdrawn with nothing to roll back to. While it is set and
# no champion serves, a challenger earns @champion through shadow and canary, never directly.
WITHDRAWN_TAG = "rollout.withdrawn"
# Version tag on a champion brought back by a rollback: the version it replaced.
RESTORED_FROM_TAG = "rollout.restored_from"
# Version tag: the reason of the last move about the version (which checks failed or passed).
REASON_TAG = "rollout.reason"
MAX_REASON_CHARS = 4_000  # MLflow caps a version tag's value at 5,000 characters
REJECTED_STATUSES = frozenset({"rejected", "rolled_back", "withdrawn"})


def since_tag(role: str) -> str:
    """Version tag holding when the version took ``role`` (ns since the epoch)."""
    return f"rollout.{role}_since_ns"


@dataclass(frozen=True)
class RolloutPolicy:
    """How much evidence each step needs and the budgets a serving model must stay within."""

    min_shadow_predictions: int = 600
    shadow_timeout_s: float = 3600.0
    canary_period_s: float = 1800.0
    min_canary_predictions: int = 300
    max_p95_latency_ms: float = 50.0
    max_error_rate: float = 0.01
    ic_floor: float = -0.02
    # A champion's live IC breaches the floor only when it lies below it by more than
    # ``ic_floor_z`` standard errors. Predictions come every second but their labels span a
    # horizon, so only one in ``predictions_per_horizon`` is an independent observation: 15
    # minutes of two symbols are some 30, whose IC has a standard error near 0.18. Without the
    # margin, a sound champion's IC of a quiet quarter of an hour crossed -0.02 about half the time.
    ic_floor_z: float = 2.0
    predictions_per_horizon: float = 60.0
    min_breach_predictions: int = 120
    breach_window_s: float = 900.0
    probation_s: float = 6 * 3600.0


class Move(StrEnum):
    """What a decision does."""

    HOLD = "hold"
    BOOTSTRAP = "bootstrap"
    SHADOW = "shadow"
    CANARY = "canary"
    CHAMPION = "champion"
    REJECT = "reject"
    ROLLBACK = "rollback"
    WITHDRAW = "withdraw"


@dataclass(frozen=True)
class Slot:
    """The version behind one alias and since when (None: unknown)."""

    version: str
    since_ns: int | None = None


@dataclass(frozen=True)
class RegistryState:
    """Where the aliases point, the remembered previous champion (only one still registered and
    never turned down), the withdrawn champion (when a withdrawal left no champion), and whether
    the current challenger was already turned down."""

    challenger: str | None = None
    shadow: Slot | None = None
    canary: Slot | None = None
    champion: Slot | None = None
    previous_champion: str | None = None
    challenger_rejected: bool = False
    withdrawn: str | None = None


@dataclass(frozen=True)
class Evidence:
    """Live metrics the decision needs; None where nothing was measured.

    ``champion_vs_shadow`` is the champion over the shadow's span, so both face the same market;
    ``champion_recent`` is the champion over the last ``breach_window_s``.
    """

    shadow: RoleMetrics | None = None
    champion_vs_shadow: RoleMetrics | None = None
    canary: RoleMetrics | None = None
    champion_recent: RoleMetrics | None = None


@dataclass(frozen=True)
class Check:
    """One criterion of a decision with its measured value and limit."""

    name: str
    value: float | None
    limit: float | None
    passed: bool


@dataclass(frozen=True)
class Decision:
    """One move and the registry changes that carry it out."""

    move: Move
    version: str | None
    reason: str
    checks: tuple[Check, ...] = ()
    set_aliases: Mapping[str, str] = field(default_factory=dict)
    delete_aliases: tuple[str, ...] = ()
    version_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    previous_champion: str | None = None  # remember this version for rollback
    forget_previous_champion: bool = False
    withdrawn: str | None = None  # record this champion as withdrawn (no champion after it)
    clear_withdrawn: bool = False
    # A version rolled back or withdrawn: whatever alias still points at it once the decision is
    # applied goes too, including any the registry state did not show.
    turned_down: str | None = None


def breaches(metrics: RoleMetrics | None, policy: RolloutPolicy) -> tuple[Check, ...]:
    """The breach criteria that have enough evidence to be judged (error rate and p95 latency
    once ``min_breach_predictions`` were served, live IC once that many matured)."""
    if metrics is None or metrics.predictions < policy.min_breach_predictions:
        return ()
    checks = [
        Check(
            "error_rate",
            metrics.error_rate,
            policy.max_error_rate,
            metrics.error_rate <= policy.max_error_rate,
        )
    ]
    p95 = metrics.latency_p95_ms
    if p95 is not None:
        checks.append(
            Check(
                "latency_p95_ms", p95, policy.max_p95_latency_ms, p95 <= policy.max_p95_latency_ms
            )
        )
    if metrics.matured >= policy.min_breach_predictions and metrics.ic is not None:
        limit = ic_breach_limit(metrics.matured, policy)
        checks.append(Check("ic_floor", metrics.ic, limit, metrics.ic >= limit))
    return tuple(checks)


def ic_breach_limit(matured: int, policy: RolloutPolicy) -> float:
    """The live IC below which a champion breaches: the floor less ``ic_floor_z`` standard
    errors of an IC over ``matured / predictions_per_horizon`` independent observations
    (``1 / sqrt(n)``, at least one observation)."""
    independent = max(matured / max(policy.predictions_per_horizon, 1.0), 1.0)
    return policy.ic_floor - policy.ic_floor_z / math.sqrt(independent)


def aliases_of(state: RegistryState, version: str) -> tuple[str, ...]:
    """The house aliases ``state`` shows on ``version``, the serving ones first."""
    slots = {"champion": state.champion, "canary": state.canary, "shadow": state.shadow}
    held = [alias for alias, slot in slots.items() if slot is not None and slot.version == version]
    return (*held, "challenger") if state.challenger == version else tuple(held)


def failed(checks: tuple[Check, ...]) -> str:
    """The failed criteria as ``name value vs limit``, comma separated."""
    return ", ".join(
        f"{c.name} {c.value:.4g} vs limit {c.limit:.4g}"
        for c in checks
        if not c.passed and c.value is not None and c.limit is not None
    )


def age_s(slot: Slot, now_ns: int) -> float | None:
    """Seconds since the slot's version took it (None: unknown)."""
    return None if slot.since_ns is None else (now_ns - slot.since_ns) / NS


def status_tags(version: str, status: str, now_ns: int | None = None) -> dict[str, dict[str, str]]:
    """``version``'s new status and, given ``now_ns``, since when (``<status>_since_ns``)."""
    tags = {STATUS_TAG: status}
    if now_ns is not None:
        tags[since_tag(status)] = str(now_ns)
    return {version: tags}
