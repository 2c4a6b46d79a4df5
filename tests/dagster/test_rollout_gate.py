"""The rollout sensor and the evaluation gate (see rollout_world): no move puts an alias on a
version the gate did not pass, not even one whose @challenger was set by hand in MLflow, no
rollback restores one, and a champion rolled back or withdrawn keeps no alias at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dagster.rollout_world import (
    World,
    build_market,
    land,
    moved,
    new_world,
)
from tests.dagster.test_rollout_sensor import promoted_by_hand
from trading_assets.lib.models.registry import record_gate_verdict
from trading_assets.lib.models.rollout import STATUS_TAG


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def world(tmp_path: Path, mlflow_root: Path) -> World:
    return new_world(tmp_path, mlflow_root)


def register_ungated(world: World, verdict: bool | None) -> str:
    """A version the gate failed (``verdict`` False) or never judged (None), made @challenger
    behind the library's back, as the MLflow UI allows."""
    number = world.register_version()
    if verdict is not None:
        record_gate_verdict(world.mlflow.tracking_uri, world.name, number, verdict, "IC 0.001")
    world.client().set_registered_model_alias(world.name, "challenger", number)
    return number


@pytest.mark.parametrize(
    ("verdict", "serving"),
    [(None, False), (False, False), (False, True)],
    ids=["never-judged-fresh-install", "failed-fresh-install", "failed-beside-a-champion"],
)
def test_the_rollout_moves_no_alias_onto_a_version_the_gate_did_not_pass(
    world: World, verdict: bool | None, serving: bool
):
    champion = world.register_challenger() if serving else None
    if champion is not None:
        world.tick()  # a gated first champion
    ungated = register_ungated(world, verdict)
    before = world.aliases()

    refused = world.tick()

    role = "shadow" if serving else "champion"
    why = "has no verdict from" if verdict is None else "failed"
    assert not refused.asset_events and refused.skip_reason is not None
    skipped = str(refused.skip_reason)
    assert f"version {ungated} may not hold @{role}: it {why} the evaluation gate" in skipped
    assert world.aliases() == before
    assert STATUS_TAG not in world.tags(ungated)


def test_a_rolled_back_champion_keeps_no_alias(world: World):
    market = build_market(world, seed=13)
    first = world.register_challenger()
    world.tick()  # fresh install: v1 @champion (and still @challenger)
    second = world.register_challenger()
    promoted_by_hand(world, second, first, hours_ago=0.2)
    world.client().set_registered_model_alias(world.name, "pinned", second)
    land(world, market, second, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=1)

    rollback = moved(world.tick())

    assert rollback["move"] == "rollback" and rollback["champion"] == first
    assert world.aliases() == {"champion": first}
    assert world.client().get_model_version(world.name, second).aliases == []


def test_a_withdrawn_champion_keeps_no_alias(world: World):
    market = build_market(world, seed=17)
    first = world.register_challenger()
    world.tick()  # fresh install: v1 @champion (and still @challenger)
    land(world, market, first, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=2)
    world.backdate(first, "champion", 11 * 60)

    withdrawal = moved(world.tick())
    after = world.tick()

    assert withdrawal["move"] == "withdraw" and withdrawal["version"] == first
    assert "@champion and @challenger removed" in withdrawal["reason"]
    assert world.aliases() == {}
    assert after.skip_reason is not None and "no model serves" in str(after.skip_reason)


def test_a_previous_champion_the_gate_never_passed_is_not_rolled_back_to(world: World):
    # A champion from before the gate recorded verdicts, then a gated one promoted over it.
    market = build_market(world, seed=19)
    first = register_ungated(world, verdict=None)
    second = world.register_challenger()
    promoted_by_hand(world, second, first, hours_ago=0.2)
    land(world, market, second, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=3)

    withdrawal = moved(world.tick())

    assert withdrawal["move"] == "withdraw" and withdrawal["version"] == second
    assert f"previous champion v{first} cannot be restored" in withdrawal["reason"]
    assert "no verdict from the evaluation gate" in withdrawal["reason"]
    assert world.aliases() == {}
