"""Model rollout decisions: @challenger → @shadow → @canary → @champion, and rollback.

Pure logic: :func:`decide` takes where the aliases point (:class:`RegistryState`), the live
evidence (:class:`Evidence`, from :mod:`trading_assets.lib.models.live_metrics`) and the
:class:`RolloutPolicy`, and returns one :class:`Decision` saying which aliases to set or delete
and which tags to write. The caller (the rollout sensor) applies it to MLflow. One move per
evaluation, in this order:

1. **Bootstrap.** No @champion at all (a fresh install): the first @challenger becomes @champion
   directly. There is nothing to compare it with and the sidecar trades nothing without a
   champion; it already passed the offline evaluation gate to become @challenger.
2. **Rollback.** A champion promoted less than ``probation_s`` ago that breaches (error rate,
   p95 latency over budget, or live IC below the floor, once enough evidence exists) is replaced
   by the previous champion, remembered at promotion. The failed version is marked rolled back.
3. **Canary.** A breaching canary is rejected (alias removed). A canary that served
   ``canary_period_s`` with at least ``min_canary_predictions`` matured and no breach becomes
   @champion; the old champion is remembered for rollback.
4. **Shadow.** After ``min_shadow_predictions`` matured, a shadow whose live IC and hit rate are
   at least the champion's over the same span, and whose latency and error rate are within
   budget, moves to @canary (when the canary slot is free); otherwise it is rejected.
5. **New challenger.** A @challenger that is not serving and was never rejected becomes @shadow
   when the shadow slot is free, or replaces a shadow that could not collect its evidence within
   ``shadow_timeout_s``. Challengers arriving while a shadow is under evaluation wait; the newest
   one is taken when the slot frees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from trading_assets.lib.models.live_metrics import NS, RoleMetrics

STATUS_TAG = "rollout.status"
PREVIOUS_CHAMPION_TAG = "rollout.previous_champion"
REJECTED_STATUSES = frozenset({"rejected", "rolled_back"})


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


@dataclass(frozen=True)
class Slot:
    """The version behind one alias and since when (None: unknown)."""

    version: str
    since_ns: int | None = None


@dataclass(frozen=True)
class RegistryState:
    """Where the aliases point, the remembered previous champion, and whether the current
    challenger was already turned down."""

    challenger: str | None = None
    shadow: Slot | None = None
    canary: Slot | None = None
    champion: Slot | None = None
    previous_champion: str | None = None
    challenger_rejected: bool = False


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
        checks.append(Check("ic_floor", metrics.ic, policy.ic_floor, metrics.ic >= policy.ic_floor))
    return tuple(checks)


def _failed(checks: tuple[Check, ...]) -> str:
    return ", ".join(
        f"{c.name} {c.value:.4g} vs limit {c.limit:.4g}"
        for c in checks
        if not c.passed and c.value is not None and c.limit is not None
    )


def _age_s(slot: Slot, now_ns: int) -> float | None:
    return None if slot.since_ns is None else (now_ns - slot.since_ns) / NS


def _tags(version: str, status: str, now_ns: int | None = None) -> dict[str, dict[str, str]]:
    tags = {STATUS_TAG: status}
    if now_ns is not None:
        tags[since_tag(status)] = str(now_ns)
    return {version: tags}


def _rollback(state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int):
    champion = state.champion
    assert champion is not None
    checks = breaches(evidence.champion_recent, policy)
    if all(c.passed for c in checks):
        return None
    age = _age_s(champion, now_ns)
    previous = state.previous_champion
    if previous is None or previous == champion.version or age is None or age > policy.probation_s:
        # Nothing safe to go back to: keep serving, and say so.
        return Decision(
            Move.HOLD,
            champion.version,
            f"champion v{champion.version} breaches ({_failed(checks)}) but has no previous "
            "champion within probation to roll back to",
            checks,
        )
    return Decision(
        Move.ROLLBACK,
        previous,
        f"champion v{champion.version} breached within probation ({_failed(checks)}): "
        f"back to v{previous}",
        checks,
        set_aliases={"champion": previous},
        version_tags=_tags(champion.version, "rolled_back") | _tags(previous, "champion", now_ns),
        forget_previous_champion=True,
    )


def _canary(state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int):
    canary, champion = state.canary, state.champion
    assert canary is not None and champion is not None
    checks = breaches(evidence.canary, policy)
    if not all(c.passed for c in checks):
        return Decision(
            Move.REJECT,
            canary.version,
            f"canary v{canary.version} breached ({_failed(checks)}): removed",
            checks,
            delete_aliases=("canary",),
            version_tags=_tags(canary.version, "rejected"),
        )
    age = _age_s(canary, now_ns)
    matured = evidence.canary.matured if evidence.canary else 0
    waiting = Check(
        "canary_age_s", age, policy.canary_period_s, (age or 0) >= policy.canary_period_s
    )
    enough = Check(
        "canary_matured", matured, policy.min_canary_predictions,
        matured >= policy.min_canary_predictions,
    )  # fmt: skip
    checks = (*checks, waiting, enough)
    if not (waiting.passed and enough.passed):
        return Decision(
            Move.HOLD,
            canary.version,
            f"canary v{canary.version}: {age or 0:.0f}/{policy.canary_period_s:.0f} s, "
            f"{matured}/{policy.min_canary_predictions} matured",
            checks,
        )
    return Decision(
        Move.CHAMPION,
        canary.version,
        f"canary v{canary.version} served {age:.0f} s without breach: champion "
        f"(v{champion.version} kept for rollback)",
        checks,
        set_aliases={"champion": canary.version},
        delete_aliases=("canary",),
        version_tags=_tags(canary.version, "champion", now_ns) | _tags(champion.version, "retired"),
        previous_champion=champion.version,
    )


def shadow_checks(
    shadow: RoleMetrics, champion: RoleMetrics | None, policy: RolloutPolicy
) -> tuple[Check, ...]:
    """Shadow vs champion over the same span: IC and hit rate at least the champion's (when the
    champion has any), latency and error rate within budget, IC above the floor."""
    checks = []
    for name in ("ic", "hit_rate"):
        mine = getattr(shadow, name)
        theirs = None if champion is None else getattr(champion, name)
        if theirs is not None:
            checks.append(
                Check(f"{name}_vs_champion", mine, theirs, mine is not None and mine >= theirs)
            )
    p95 = shadow.latency_p95_ms
    checks.append(
        Check(
            "latency_p95_ms",
            p95,
            policy.max_p95_latency_ms,
            p95 is not None and p95 <= policy.max_p95_latency_ms,
        )
    )
    checks.append(
        Check(
            "error_rate",
            shadow.error_rate,
            policy.max_error_rate,
            shadow.error_rate <= policy.max_error_rate,
        )
    )
    checks.append(
        Check(
            "ic_floor",
            shadow.ic,
            policy.ic_floor,
            shadow.ic is not None and shadow.ic >= policy.ic_floor,
        )
    )
    return tuple(checks)


def _shadow(state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int):
    shadow = state.shadow
    assert shadow is not None
    metrics = evidence.shadow
    matured = metrics.matured if metrics else 0
    if metrics is None or matured < policy.min_shadow_predictions:
        return Decision(
            Move.HOLD,
            shadow.version,
            f"shadow v{shadow.version}: {matured}/{policy.min_shadow_predictions} matured",
            (Check("shadow_matured", matured, policy.min_shadow_predictions, False),),
        )
    checks = shadow_checks(metrics, evidence.champion_vs_shadow, policy)
    if not all(c.passed for c in checks):
        return Decision(
            Move.REJECT,
            shadow.version,
            f"shadow v{shadow.version} fell short ({_failed(checks) or 'no live IC'}): removed",
            checks,
            delete_aliases=("shadow",),
            version_tags=_tags(shadow.version, "rejected"),
        )
    if state.canary is not None:
        return Decision(
            Move.HOLD,
            shadow.version,
            f"shadow v{shadow.version} passed; waiting for canary v{state.canary.version}",
            checks,
        )
    return Decision(
        Move.CANARY,
        shadow.version,
        f"shadow v{shadow.version} matched the champion over {matured} matured predictions: canary",
        checks,
        set_aliases={"canary": shadow.version},
        delete_aliases=("shadow",),
        version_tags=_tags(shadow.version, "canary", now_ns),
    )


def _new_challenger(state: RegistryState) -> str | None:
    challenger = state.challenger
    serving = {s.version for s in (state.shadow, state.canary, state.champion) if s is not None}
    if challenger is None or challenger in serving or state.challenger_rejected:
        return None
    return challenger


def decide(
    state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int
) -> Decision:
    """The next rollout move (see the module docstring for the order and the criteria)."""
    challenger = _new_challenger(state)
    if state.champion is None:
        if challenger is None:
            return Decision(Move.HOLD, None, "no champion and no new challenger")
        return Decision(
            Move.BOOTSTRAP,
            challenger,
            f"no champion yet: first challenger v{challenger} becomes champion directly",
            set_aliases={"champion": challenger},
            version_tags=_tags(challenger, "champion", now_ns),
        )
    holds: list[Decision] = []
    steps = [_rollback]
    steps += [_canary] if state.canary is not None else []
    steps += [_shadow] if state.shadow is not None else []
    for step in steps:
        decision = step(state, evidence, policy, now_ns)
        if decision is None:
            continue
        if decision.move is not Move.HOLD:
            return decision
        holds.append(decision)
    shadow_age = None if state.shadow is None else _age_s(state.shadow, now_ns)
    shadow_stale = shadow_age is not None and shadow_age > policy.shadow_timeout_s
    if challenger is not None and (state.shadow is None or shadow_stale):
        replaced = "" if state.shadow is None else f" (replacing stale v{state.shadow.version})"
        tags = _tags(challenger, "shadow", now_ns)
        if state.shadow is not None:
            tags |= _tags(state.shadow.version, "expired")
        return Decision(
            Move.SHADOW,
            challenger,
            f"new challenger v{challenger}: shadow{replaced}",
            set_aliases={"shadow": challenger},
            version_tags=tags,
        )
    if not holds:
        return Decision(
            Move.HOLD,
            state.champion.version,
            f"champion v{state.champion.version} serving; nothing to roll out",
        )
    return Decision(
        Move.HOLD,
        holds[0].version,
        "; ".join(d.reason for d in holds),
        tuple(c for d in holds for c in d.checks),
    )
