"""What happens to a @champion that breaches: roll back to the previous champion, or withdraw it.

A champion whose recent live record breaches a budget (error rate, p95 latency, live IC below the
floor, once enough evidence exists) never keeps serving:

- **Rollback.** When MLflow still records the previous champion (remembered at promotion, still
  registered, never turned down), it serves again. Before moving, the sensor loads its model as
  the sidecar would (``sensors.rollout_registry.restore_problem``); one that no longer loads is
  forgotten and the breaching champion withdrawn instead, since a @champion the sidecar refuses
  would leave the breaching model serving. The breaching version is marked
  ``rolled_back`` and loses every alias it still holds (a champion promoted on a fresh install
  is @challenger too); the restored one gets ``rollout.restored_from`` = the breaching version. This
  holds within probation, where the breach is the promotion's failure, and after it, where the
  champion drifted or the market turned: the reason says which. The previous champion is
  forgotten, so a rollback happens once per promotion and cannot swing back and forth.
- **Withdrawal.** With nothing to go back to, @champion is removed with every other alias of
  the withdrawn version (and @canary, since it was only judged against that champion), so the
  sidecar serves no model and trades nothing:
  its no-model safe mode. The version is marked ``withdrawn`` and recorded on the registered
  model; until a champion serves again, a challenger must earn @champion through @shadow and
  @canary on its own live record instead of taking it directly as on a fresh install.
"""

from __future__ import annotations

from trading_assets.lib.models.rollout_types import (
    RESTORED_FROM_TAG,
    Check,
    Decision,
    Evidence,
    Move,
    RegistryState,
    RolloutPolicy,
    age_s,
    aliases_of,
    breaches,
    failed,
    status_tags,
)


def _when(age: float | None, policy: RolloutPolicy) -> str:
    if age is None:
        return "at an unknown time after promotion (no since tag)"
    if age <= policy.probation_s:
        return f"within probation ({age:.0f} s after promotion)"
    return f"after probation ({age:.0f} s after promotion, probation {policy.probation_s:.0f} s)"


def rollback(
    state: RegistryState, evidence: Evidence, policy: RolloutPolicy, now_ns: int
) -> Decision | None:
    """Roll a breaching champion back, or withdraw it; None when it does not breach."""
    champion = state.champion
    assert champion is not None
    checks = breaches(evidence.champion_recent, policy)
    if all(c.passed for c in checks):
        return None
    age = age_s(champion, now_ns)
    when, breached = _when(age, policy), failed(checks)
    # Not a criterion: it says, in the recorded table, whether the promotion is to blame.
    within = age is not None and age <= policy.probation_s
    checks = (*checks, Check("within_probation", age, policy.probation_s, within))
    previous = state.previous_champion
    if previous is not None and previous != champion.version:
        tags = status_tags(champion.version, "rolled_back", now_ns)
        tags |= status_tags(previous, "champion", now_ns)
        tags[previous][RESTORED_FROM_TAG] = champion.version
        return Decision(
            Move.ROLLBACK,
            previous,
            f"champion v{champion.version} breached {when} ({breached}): back to the "
            f"previous champion v{previous}",
            checks,
            set_aliases={"champion": previous},
            delete_aliases=tuple(a for a in aliases_of(state, champion.version) if a != "champion"),
            version_tags=tags,
            forget_previous_champion=True,
            turned_down=champion.version,
        )
    tags = status_tags(champion.version, "withdrawn", now_ns)
    removed = aliases_of(state, champion.version)
    if state.canary is not None and "canary" not in removed:
        removed += ("canary",)
        tags |= status_tags(state.canary.version, "expired")
    return Decision(
        Move.WITHDRAW,
        champion.version,
        f"champion v{champion.version} breached {when} ({breached}) and MLflow records no "
        f"previous champion to roll back to: @{' and @'.join(removed)} removed, no model serves "
        "and the sidecar trades nothing until a challenger passes shadow and canary",
        checks,
        delete_aliases=removed,
        version_tags=tags,
        forget_previous_champion=previous is not None,
        withdrawn=champion.version,
        turned_down=champion.version,
    )
