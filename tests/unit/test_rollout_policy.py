"""Rollout decisions: every transition of challenger → shadow → canary → champion, and rollback."""

from __future__ import annotations

import numpy as np

from trading_assets.lib.models.live_metrics import NS, RoleMetrics
from trading_assets.lib.models.metrics import information_coefficient
from trading_assets.lib.models.rollout import (
    PREVIOUS_CHAMPION_TAG,
    REJECTED_STATUSES,
    RESTORED_FROM_TAG,
    STATUS_TAG,
    Evidence,
    Move,
    RegistryState,
    RolloutPolicy,
    Slot,
    breaches,
    decide,
    since_tag,
)

NOW = 1_700_000_000 * NS
POLICY = RolloutPolicy(
    min_shadow_predictions=100,
    shadow_timeout_s=600,
    canary_period_s=300,
    min_canary_predictions=50,
    max_p95_latency_ms=20,
    max_error_rate=0.01,
    ic_floor=-0.02,
    ic_floor_z=0.0,  # the floor as it stands: these cases judge the moves, not the noise
    min_breach_predictions=40,
    breach_window_s=120,
    probation_s=3600,
)


def metrics(
    version: str,
    role: str,
    *,
    matured: int = 200,
    predictions: int | None = None,
    errors: int = 0,
    ic: float | None = 0.05,
    hit_rate: float | None = 0.52,
    p95: float | None = 5.0,
) -> RoleMetrics:
    return RoleMetrics(
        model_version=version,
        role=role,
        predictions=predictions if predictions is not None else matured + errors,
        matured=matured,
        errors=errors,
        ic=ic,
        hit_rate=hit_rate,
        latency_p50_ms=None if p95 is None else p95 / 2,
        latency_p95_ms=p95,
        first_ns=NOW - 600 * NS,
        last_ns=NOW,
    )


def ago(seconds: float) -> int:
    return NOW - int(seconds * NS)


def champion_only(**kwargs) -> RegistryState:
    return RegistryState(champion=Slot("1", ago(7200)), **kwargs)


def test_fresh_install_makes_the_first_challenger_champion_directly():
    decision = decide(RegistryState(challenger="1"), Evidence(), POLICY, NOW)

    assert decision.move is Move.BOOTSTRAP and decision.version == "1"
    assert decision.set_aliases == {"champion": "1"}
    assert decision.version_tags["1"] == {STATUS_TAG: "champion", since_tag("champion"): str(NOW)}
    assert decision.previous_champion is None


def test_nothing_registered_holds():
    decision = decide(RegistryState(), Evidence(), POLICY, NOW)

    assert decision.move is Move.HOLD and decision.set_aliases == {}


def test_new_challenger_becomes_shadow():
    decision = decide(champion_only(challenger="2"), Evidence(), POLICY, NOW)

    assert decision.move is Move.SHADOW and decision.version == "2"
    assert decision.set_aliases == {"shadow": "2"}
    assert decision.version_tags["2"][STATUS_TAG] == "shadow"


def test_challenger_already_serving_or_rejected_is_not_taken_again():
    serving = decide(champion_only(challenger="1"), Evidence(), POLICY, NOW)
    rejected = decide(
        champion_only(challenger="2", challenger_rejected=True), Evidence(), POLICY, NOW
    )

    assert serving.move is Move.HOLD and rejected.move is Move.HOLD


def test_shadow_waits_for_enough_matured_predictions_and_newer_challengers_wait_too():
    state = champion_only(challenger="3", shadow=Slot("2", ago(120)))
    evidence = Evidence(shadow=metrics("2", "shadow", matured=99, ic=0.9))

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.HOLD and decision.version == "2"
    assert "99/100 matured" in decision.reason


def test_shadow_that_could_not_collect_evidence_in_time_is_replaced_by_the_newer_challenger():
    state = champion_only(challenger="3", shadow=Slot("2", ago(601)))
    evidence = Evidence(shadow=metrics("2", "shadow", matured=10))

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.SHADOW and decision.set_aliases == {"shadow": "3"}
    assert decision.version_tags["2"][STATUS_TAG] == "expired"


def test_shadow_at_least_as_good_as_the_champion_moves_to_canary():
    state = champion_only(challenger="2", shadow=Slot("2", ago(300)))
    evidence = Evidence(
        shadow=metrics("2", "shadow", ic=0.06, hit_rate=0.53, p95=8.0),
        champion_vs_shadow=metrics("1", "champion", ic=0.05, hit_rate=0.53),
    )

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.CANARY and decision.version == "2"
    assert decision.set_aliases == {"canary": "2"} and decision.delete_aliases == ("shadow",)
    assert decision.version_tags["2"][since_tag("canary")] == str(NOW)
    assert all(check.passed for check in decision.checks)
    assert {c.name for c in decision.checks} >= {"ic_vs_champion", "hit_rate_vs_champion"}


def test_shadow_below_the_champion_or_over_the_latency_budget_is_rejected():
    state = champion_only(challenger="2", shadow=Slot("2", ago(300)))
    champion = metrics("1", "champion", ic=0.05, hit_rate=0.52)
    worse_ic = Evidence(shadow=metrics("2", "shadow", ic=0.04), champion_vs_shadow=champion)
    slow = Evidence(shadow=metrics("2", "shadow", ic=0.09, p95=25.0), champion_vs_shadow=champion)

    for evidence, failing in ((worse_ic, "ic_vs_champion"), (slow, "latency_p95_ms")):
        decision = decide(state, evidence, POLICY, NOW)

        assert decision.move is Move.REJECT and decision.delete_aliases == ("shadow",)
        assert decision.version_tags["2"][STATUS_TAG] == "rejected"
        assert [c.name for c in decision.checks if not c.passed] == [failing]


def test_passing_shadow_waits_while_a_canary_is_in_flight():
    state = champion_only(shadow=Slot("3", ago(300)), canary=Slot("2", ago(60)))
    evidence = Evidence(
        shadow=metrics("3", "shadow", ic=0.07),
        champion_vs_shadow=metrics("1", "champion", ic=0.05),
        canary=metrics("2", "canary", matured=30),
    )

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.HOLD
    assert "waiting for canary v2" in decision.reason


def test_canary_breach_rejects_it():
    state = champion_only(canary=Slot("2", ago(100)))
    evidence = Evidence(canary=metrics("2", "canary", matured=100, errors=5))

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.REJECT and decision.version == "2"
    assert decision.delete_aliases == ("canary",) and decision.set_aliases == {}
    assert [c.name for c in decision.checks if not c.passed] == ["error_rate"]


def test_canary_holds_until_its_period_is_over():
    state = champion_only(canary=Slot("2", ago(200)))
    evidence = Evidence(canary=metrics("2", "canary", matured=100))

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.HOLD and "200/300 s" in decision.reason


def test_canary_without_breach_becomes_champion_and_the_old_champion_is_remembered():
    state = champion_only(challenger="2", canary=Slot("2", ago(301)))
    evidence = Evidence(canary=metrics("2", "canary", matured=100, ic=0.0))

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.CHAMPION and decision.version == "2"
    assert decision.set_aliases == {"champion": "2"} and decision.delete_aliases == ("canary",)
    assert decision.previous_champion == "1"
    assert decision.version_tags["1"][STATUS_TAG] == "retired"
    assert decision.version_tags["2"][since_tag("champion")] == str(NOW)


def test_new_champion_breaching_within_probation_rolls_back_to_the_previous_one():
    state = RegistryState(challenger="2", champion=Slot("2", ago(900)), previous_champion="1")
    evidence = Evidence(champion_recent=metrics("2", "champion", matured=100, ic=-0.1))

    decision = decide(state, evidence, POLICY, NOW)

    assert decision.move is Move.ROLLBACK and decision.version == "1"
    assert decision.set_aliases == {"champion": "1"}
    assert decision.forget_previous_champion
    assert decision.version_tags["2"][STATUS_TAG] == "rolled_back"
    assert [c.name for c in decision.checks if not c.passed] == ["ic_floor"]
    assert PREVIOUS_CHAMPION_TAG.startswith("rollout.")


def test_rollback_is_the_first_move_even_with_a_canary_in_flight():
    state = RegistryState(
        champion=Slot("2", ago(900)), canary=Slot("3", ago(400)), previous_champion="1"
    )
    evidence = Evidence(
        champion_recent=metrics("2", "champion", p95=40.0),
        canary=metrics("3", "canary", matured=100),
    )

    assert decide(state, evidence, POLICY, NOW).move is Move.ROLLBACK


def test_champion_breaching_after_probation_still_rolls_back_and_says_when():
    old = RegistryState(champion=Slot("2", ago(7200)), previous_champion="1")
    breaching = Evidence(champion_recent=metrics("2", "champion", errors=10, matured=100))

    decision = decide(old, breaching, POLICY, NOW)

    assert decision.move is Move.ROLLBACK and decision.set_aliases == {"champion": "1"}
    assert "after probation (7200 s after promotion" in decision.reason
    assert decision.version_tags["2"][STATUS_TAG] == "rolled_back"
    assert decision.version_tags["2"][since_tag("rolled_back")] == str(NOW)
    assert decision.version_tags["1"][RESTORED_FROM_TAG] == "2"
    assert decision.forget_previous_champion
    (probation,) = [c for c in decision.checks if c.name == "within_probation"]
    assert probation.value == 7200 and not probation.passed


def test_breaching_champion_with_no_previous_is_withdrawn_with_its_canary():
    state = RegistryState(challenger="3", champion=Slot("2", ago(900)), canary=Slot("3", ago(100)))
    breaching = Evidence(
        champion_recent=metrics("2", "champion", errors=10, matured=100),
        canary=metrics("3", "canary", matured=20),
    )

    decision = decide(state, breaching, POLICY, NOW)

    assert decision.move is Move.WITHDRAW and decision.version == "2"
    assert decision.set_aliases == {} and decision.delete_aliases == ("champion", "canary")
    assert decision.withdrawn == "2"
    assert decision.version_tags["2"][STATUS_TAG] == "withdrawn"
    assert decision.version_tags["3"][STATUS_TAG] == "expired"
    assert "error_rate" in decision.reason and "trades nothing" in decision.reason
    assert "withdrawn" in REJECTED_STATUSES


def test_after_a_withdrawal_a_challenger_goes_through_shadow_not_straight_to_champion():
    withdrawn = RegistryState(challenger="3", withdrawn="2")
    idle = RegistryState(withdrawn="2")

    decision = decide(withdrawn, Evidence(), POLICY, NOW)
    waiting = decide(idle, Evidence(), POLICY, NOW)

    assert decision.move is Move.SHADOW and decision.set_aliases == {"shadow": "3"}
    assert waiting.move is Move.HOLD and "no model serves" in waiting.reason


def test_after_a_withdrawal_shadow_and_canary_are_judged_on_their_own_record():
    shadow = RegistryState(challenger="3", shadow=Slot("3", ago(700)), withdrawn="2")
    canary = RegistryState(challenger="3", canary=Slot("3", ago(301)), withdrawn="2")
    weak = metrics("3", "shadow", matured=150, ic=-0.05)

    to_canary = decide(shadow, Evidence(shadow=metrics("3", "shadow", matured=150)), POLICY, NOW)
    rejected = decide(shadow, Evidence(shadow=weak), POLICY, NOW)
    champion = decide(canary, Evidence(canary=metrics("3", "canary", matured=60)), POLICY, NOW)

    assert to_canary.move is Move.CANARY and "held its budgets" in to_canary.reason
    assert {c.name for c in to_canary.checks} == {"latency_p95_ms", "error_rate", "ic_floor"}
    assert rejected.move is Move.REJECT
    assert champion.move is Move.CHAMPION and champion.set_aliases == {"champion": "3"}
    assert champion.clear_withdrawn and champion.previous_champion is None
    assert "no champion since v2 was withdrawn" in champion.reason


def test_breaches_are_judged_only_with_enough_evidence():
    thin = metrics("2", "champion", matured=10, errors=5, ic=-0.5, p95=99.0)
    unmatured = metrics("2", "champion", matured=0, predictions=100, ic=None, p95=3.0)

    assert breaches(thin, POLICY) == ()
    assert [c.name for c in breaches(unmatured, POLICY)] == ["error_rate", "latency_p95_ms"]
    assert all(c.passed for c in breaches(unmatured, POLICY))


def test_a_sound_champions_quiet_quarter_hour_is_not_a_breach_but_a_bad_one_is():
    # Arrange: a model whose predictions carry nothing (true IC 0) scored like the live metrics,
    # one prediction a second over 60 s labels, for 15 minutes of two symbols
    rng = np.random.default_rng(3)
    policy = RolloutPolicy()
    matured, horizon = 1_800, 60
    noise_ics = []
    for _ in range(200):
        steps = rng.normal(size=(matured + horizon))
        realized = np.convolve(steps, np.ones(horizon), "valid")[:matured]  # overlapping labels
        predicted = np.repeat(rng.normal(size=matured // horizon + 1), horizon)[:matured]
        noise_ics.append(information_coefficient(predicted, realized))
    state = champion_only()

    def verdict(ic: float) -> Move:
        evidence = Evidence(champion_recent=metrics("1", "champion", matured=matured, ic=ic))
        return decide(state, evidence, policy, NOW).move

    # Act
    below_raw_floor = sum(ic < policy.ic_floor for ic in noise_ics)
    breached = sum(verdict(ic) is Move.WITHDRAW for ic in noise_ics)

    # Assert: the raw floor would turn a sound champion down about half the time; the margin
    # does so rarely (about 2.5 % at z = 2), and a champion that is plainly wrong still goes
    assert below_raw_floor > 60
    assert breached <= 10
    assert verdict(-0.6) is Move.WITHDRAW
