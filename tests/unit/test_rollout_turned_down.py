"""A champion rolled back or withdrawn keeps no alias: a champion promoted on a fresh install is
@challenger as well, and must not stay one after it is turned down."""

from __future__ import annotations

from trading_assets.lib.models.live_metrics import NS, RoleMetrics
from trading_assets.lib.models.rollout import (
    Evidence,
    Move,
    RegistryState,
    RolloutPolicy,
    Slot,
    decide,
)

NOW = 1_700_000_000 * NS
POLICY = RolloutPolicy(min_breach_predictions=40, probation_s=3600)


def slow(version: str) -> RoleMetrics:
    """A champion's recent record with p95 latency far over the budget."""
    return RoleMetrics(
        model_version=version,
        role="champion",
        predictions=100,
        matured=100,
        errors=0,
        ic=0.05,
        hit_rate=0.52,
        latency_p50_ms=200.0,
        latency_p95_ms=400.0,
        first_ns=NOW - 600 * NS,
        last_ns=NOW,
    )


def test_a_rolled_back_champion_loses_its_challenger_alias_too():
    state = RegistryState(challenger="2", champion=Slot("2", NOW - 900 * NS), previous_champion="1")

    decision = decide(state, Evidence(champion_recent=slow("2")), POLICY, NOW)

    assert decision.move is Move.ROLLBACK
    assert decision.set_aliases == {"champion": "1"}
    assert decision.delete_aliases == ("challenger",)
    assert decision.turned_down == "2"


def test_a_withdrawn_champion_loses_every_alias_and_the_canary_goes_with_it():
    state = RegistryState(
        challenger="2", champion=Slot("2", NOW - 900 * NS), canary=Slot("3", NOW - 60 * NS)
    )

    decision = decide(state, Evidence(champion_recent=slow("2")), POLICY, NOW)

    assert decision.move is Move.WITHDRAW and decision.set_aliases == {}
    assert decision.delete_aliases == ("champion", "challenger", "canary")
    assert decision.turned_down == "2"
    assert "@champion and @challenger and @canary removed" in decision.reason


def test_a_champion_that_holds_no_other_alias_loses_only_its_own():
    state = RegistryState(challenger="3", champion=Slot("2", NOW - 900 * NS), previous_champion="1")

    decision = decide(state, Evidence(champion_recent=slow("2")), POLICY, NOW)

    assert decision.move is Move.ROLLBACK
    assert decision.delete_aliases == () and decision.turned_down == "2"
