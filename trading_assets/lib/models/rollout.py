"""Model rollout decisions: @challenger → @shadow → @canary → @champion, and rollback.

Pure logic: :func:`decide` takes where the aliases point (:class:`RegistryState`), the live
evidence (:class:`Evidence`, from :mod:`trading_assets.lib.models.live_metrics`) and the
:class:`RolloutPolicy`, and returns one :class:`Decision` saying which aliases to set or delete
and which tags to write. The caller (the rollout sensor) applies it to MLflow, where every alias
it sets must pass the evaluation gate's rule
(:func:`trading_assets.lib.models.registry.require_gate_passed`). One move per evaluation, in
this order:

1. **Bootstrap.** No @champion at all (a fresh install): the first @challenger becomes @champion
   directly. There is nothing to compare it with and the sidecar trades nothing without a
   champion; it already passed the offline evaluation gate to become @challenger. Not after a
   withdrawal (below): then the steps that follow run without a champion, so a challenger earns
   @champion through shadow and canary on its own live record.
2. **Rollback** (:mod:`trading_assets.lib.models.rollback`). A champion that breaches (error
   rate, p95 latency over budget, or live IC below the floor, once enough evidence exists) is
   replaced by the previous champion still recorded in MLflow, within probation or after it;
   with none, it is withdrawn and no model serves (the sidecar trades nothing). Either way the
   turned-down version keeps no alias at all.
3. **Canary.** A breaching canary is rejected (alias removed). A canary that served
   ``canary_period_s`` with at least ``min_canary_predictions`` matured and no breach becomes
   @champion; the old champion is remembered for rollback.
4. **Shadow.** After ``min_shadow_predictions`` matured, a shadow whose live IC and hit rate are
   at least the champion's over the same span (when a champion serves), and whose latency, error
   rate and live IC are within budget, moves to @canary (when the canary slot is free);
   otherwise it is rejected.
5. **New challenger.** A @challenger that is not serving and was never rejected becomes @shadow
   when the shadow slot is free, or replaces a shadow that could not collect its evidence within
   ``shadow_timeout_s``. Challengers arriving while a shadow is under evaluation wait; the newest
   one is taken when the slot frees.
"""

from __future__ import annotations

from trading_assets.lib.models.live_metrics import RoleMetrics
from trading_assets.lib.models.rollback import rollback
from trading_assets.lib.models.rollout_types import (
    MAX_REASON_CHARS,
    PREVIOUS_CHAMPION_TAG,
    REASON_TAG,
    REJECTED_STATUSES,
    RESTORED_FROM_TAG,
    STATUS_TAG,
    WITHDRAWN_TAG,
    Check,
    Decision,
    Evidence,
    Move,
    RegistryState,
    RolloutPolicy,
    Slot,
    age_s,
    breaches,
    failed,
    since_tag,
    status_tags,
)

__all__ = [
    "MAX_REASON_CHARS",
    "PREVIOUS_CHAMPION_TAG",
    "REASON_TAG",
    "REJECTED_STATUSES",
    "RESTORED_FROM_TAG",
    "STATUS_TAG",
    "WITHDRAWN_TAG",
    "Check",
    "Decision",
    "Evidence",
    "Move",
    "RegistryState",
    "RolloutPolicy",
    "Slot",
    "breaches",
    "decide",
    "shadow_checks",
    "since_tag",
]


def _canary(state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int):
    canary, champion = state.canary, state.champion
    assert canary is not None
    checks = breaches(evidence.canary, policy)
    if not all(c.passed for c in checks):
        return Decision(
            Move.REJECT,
            canary.version,
            f"canary v{canary.version} breached ({failed(checks)}): removed",
            checks,
            delete_aliases=("canary",),
            version_tags=status_tags(canary.version, "rejected"),
        )
    age = age_s(canary, now_ns)
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
    tags = status_tags(canary.version, "champion", now_ns)
    if champion is None:
        # After a withdrawal: the first champion since, with nothing behind it to roll back to.
        before = f"no champion since v{state.withdrawn} was withdrawn"
    else:
        before = f"v{champion.version} kept for rollback"
        tags |= status_tags(champion.version, "retired")
    return Decision(
        Move.CHAMPION,
        canary.version,
        f"canary v{canary.version} served {age:.0f} s without breach: champion ({before})",
        checks,
        set_aliases={"champion": canary.version},
        delete_aliases=("canary",),
        version_tags=tags,
        previous_champion=None if champion is None else champion.version,
        clear_withdrawn=state.withdrawn is not None,
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
            f"shadow v{shadow.version} fell short ({failed(checks) or 'no live IC'}): removed",
            checks,
            delete_aliases=("shadow",),
            version_tags=status_tags(shadow.version, "rejected"),
        )
    if state.canary is not None:
        return Decision(
            Move.HOLD,
            shadow.version,
            f"shadow v{shadow.version} passed; waiting for canary v{state.canary.version}",
            checks,
        )
    measure = "matched the champion" if state.champion is not None else "held its budgets"
    return Decision(
        Move.CANARY,
        shadow.version,
        f"shadow v{shadow.version} {measure} over {matured} matured predictions: canary",
        checks,
        set_aliases={"canary": shadow.version},
        delete_aliases=("shadow",),
        version_tags=status_tags(shadow.version, "canary", now_ns),
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
    if state.champion is None and state.withdrawn is None:
        if challenger is None:
            return Decision(Move.HOLD, None, "no champion and no new challenger")
        return Decision(
            Move.BOOTSTRAP,
            challenger,
            f"no champion yet: first challenger v{challenger} becomes champion directly",
            set_aliases={"champion": challenger},
            version_tags=status_tags(challenger, "champion", now_ns),
        )
    holds: list[Decision] = []
    steps = [rollback] if state.champion is not None else []
    steps += [_canary] if state.canary is not None else []
    steps += [_shadow] if state.shadow is not None else []
    for step in steps:
        decision = step(state, evidence, policy, now_ns)
        if decision is None:
            continue
        if decision.move is not Move.HOLD:
            return decision
        holds.append(decision)
    shadow_age = None if state.shadow is None else age_s(state.shadow, now_ns)
    shadow_stale = shadow_age is not None and shadow_age > policy.shadow_timeout_s
    if challenger is not None and (state.shadow is None or shadow_stale):
        replaced = "" if state.shadow is None else f" (replacing stale v{state.shadow.version})"
        tags = status_tags(challenger, "shadow", now_ns)
        if state.shadow is not None:
            tags |= status_tags(state.shadow.version, "expired")
        return Decision(
            Move.SHADOW,
            challenger,
            f"new challenger v{challenger}: shadow{replaced}",
            set_aliases={"shadow": challenger},
            version_tags=tags,
        )
    if not holds and state.champion is None:
        return Decision(
            Move.HOLD,
            None,
            f"no champion since v{state.withdrawn} was withdrawn: no model serves and nothing "
            "trades until a challenger passes shadow and canary",
        )
    if not holds:
        assert state.champion is not None
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
