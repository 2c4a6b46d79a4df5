"""The model_rollout sensor against a real sqlite MLflow, a real tmp Iceberg catalog holding
bars_1s, and a predictions log landed by the sidecar's own LandingWriter (see rollout_world).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import polars as pl
import pytest

from sensors.rollout import RolloutPolicyResource
from streaming.inference import SlotChange
from tests.dagster.rollout_world import World, build_market, land, moved, new_world
from tests.mirrored_slots import MirroredSlots
from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.ingest.landing import LandingResource
from trading_assets.defs.models.live import NO_MATURED_PREDICTIONS, live_model_metrics
from trading_assets.lib.models.live_metrics import METRICS_FILE, RANGES_FILE
from trading_assets.lib.models.registry import ONNX_FILE
from trading_assets.lib.models.rollout import (
    PREVIOUS_CHAMPION_TAG,
    REASON_TAG,
    RESTORED_FROM_TAG,
    STATUS_TAG,
    WITHDRAWN_TAG,
)


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One store for the module (MLflow's sqlite schema takes seconds to create); a name per test.
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def world(tmp_path: Path, mlflow_root: Path) -> World:
    return new_world(tmp_path, mlflow_root)


def test_challenger_to_shadow_to_canary_to_champion_then_rollback_on_breach(world: World):
    market = build_market(world)
    empty = world.tick()

    first = world.register_challenger()
    bootstrap = moved(world.tick())
    land(world, market, first, "champion", minutes=24, noise=4e-3, seed=1)

    second = world.register_challenger()
    shadow = moved(world.tick())
    waiting = world.tick()  # the shadow has no evidence of its own yet
    matured = land(world, market, second, "shadow", minutes=15, noise=1e-3, seed=2)
    world.backdate(second, "shadow", 16 * 60)
    canary = moved(world.tick())
    land(world, market, second, "canary", minutes=15, noise=1e-3, seed=3)
    world.backdate(second, "canary", 16 * 60)
    champion = moved(world.tick())
    # The new champion turns slow: p95 latency far over the 20 ms budget.
    land(world, market, second, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=4)
    world.backdate(second, "champion", 11 * 60)
    rollback = moved(world.tick())
    after = world.tick()

    assert empty.skip_reason is not None and not empty.asset_events
    assert bootstrap["move"] == "bootstrap" and bootstrap["champion"] == first
    # The first champion is chosen on no live evidence, so there is no watermark to record.
    assert "watermark" not in bootstrap and bootstrap["watermark_note"].startswith("no matured")
    assert shadow["move"] == "shadow" and shadow["shadow"] == second
    assert waiting.skip_reason is not None and "0/200 matured" in str(waiting.skip_reason)
    assert matured >= 200
    assert canary["move"] == "canary" and (canary["canary"], canary["shadow"]) == (second, "")
    evidence = canary["evidence"]
    assert evidence["shadow"]["matured"] == matured
    assert evidence["shadow"]["ic"] > evidence["champion_vs_shadow"]["ic"] > 0
    # The evidence reaches the newest landed prediction whose 60 s outcome the bars hold.
    newest_matured = market.scored_seconds(0)[-1] + 0.05
    assert canary["watermark"] == champion["watermark"] == pytest.approx(newest_matured)
    assert champion["move"] == "champion"
    assert (champion["champion"], champion["canary"]) == (second, "")
    assert champion["previous_champion"] == first
    assert rollback["move"] == "rollback" and rollback["champion"] == first
    assert rollback["evidence"]["champion_recent"]["latency_p95_ms"] == pytest.approx(80.0)
    assert "latency_p95_ms" in rollback["reason"]
    # MLflow holds the outcome: v1 serves again, v2 is marked, keeps no alias (not even
    # @challenger) and is never picked up again.
    assert world.aliases() == {"champion": first}
    assert world.tags(second)[STATUS_TAG] == "rolled_back"
    assert PREVIOUS_CHAMPION_TAG not in world.client().get_registered_model(world.name).tags
    assert after.skip_reason is not None and not after.asset_events


def test_shadow_worse_than_the_champion_is_rejected_and_not_taken_again(world: World):
    market = build_market(world, seed=11)
    first = world.register_challenger()
    world.tick()
    land(world, market, first, "champion", minutes=24, noise=1e-3, seed=5)
    second = world.register_challenger()
    world.tick()
    land(world, market, second, "shadow", minutes=15, noise=2e-2, seed=6)  # mostly noise
    world.backdate(second, "shadow", 16 * 60)

    rejected = moved(world.tick())
    again = world.tick()

    assert rejected["move"] == "reject" and rejected["version"] == second
    assert "ic_vs_champion" in rejected["checks"]
    assert world.aliases() == {"champion": first, "challenger": second}
    assert world.tags(second)[STATUS_TAG] == "rejected"
    # Why, on the version itself (MLflow's UI), as in the move's event.
    assert world.tags(second)[REASON_TAG] == rejected["reason"]
    assert "ic_vs_champion" in rejected["reason"] or "hit_rate" in rejected["reason"]
    assert again.skip_reason is not None and not again.asset_events


def promoted_by_hand(world: World, champion: str, previous: str, hours_ago: float) -> None:
    """What a promotion ``hours_ago`` left in MLflow: ``champion`` serving, ``previous`` retired
    and remembered for rollback."""
    client = world.client()
    client.set_model_version_tag(world.name, previous, STATUS_TAG, "retired")
    client.set_model_version_tag(world.name, champion, STATUS_TAG, "champion")
    client.set_registered_model_tag(world.name, PREVIOUS_CHAMPION_TAG, previous)
    client.set_registered_model_alias(world.name, "champion", champion)
    world.backdate(champion, "champion", hours_ago * 3600)


def test_breach_after_probation_rolls_back_and_a_second_breach_leaves_no_model(
    world: World, tmp_path: Path
):
    market = build_market(world, seed=13)
    first = world.register_challenger()
    world.tick()  # the bootstrap move: v1 champion
    second = world.register_challenger()
    promoted_by_hand(world, second, first, hours_ago=7)  # past the hour of probation
    land(world, market, second, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=1)
    sidecar = MirroredSlots(world.mlflow.tracking_uri, world.name, tmp_path, roles=("champion",))

    rollback = moved(world.tick())
    loaded = sidecar.refresh()
    # The restored champion breaches too, with nothing left to go back to.
    land(world, market, first, "champion", minutes=10, noise=1e-3, latency_ms=90.0, seed=2)
    world.backdate(first, "champion", 11 * 60)
    withdrawal = moved(world.tick())
    emptied = sidecar.refresh()
    third = world.register_challenger()
    successor = moved(world.tick())

    assert rollback["move"] == "rollback" and rollback["champion"] == first
    assert "after probation" in rollback["reason"] and "latency_p95_ms" in rollback["reason"]
    assert "| within_probation | 2.52e+04 | 3600 | no |" in rollback["checks"]
    assert world.tags(second)[STATUS_TAG] == "rolled_back"
    assert world.tags(first)[RESTORED_FROM_TAG] == second
    assert loaded.changes["champion"] is SlotChange.LOADED
    assert withdrawal["move"] == "withdraw" and withdrawal["version"] == first
    assert (withdrawal["champion"], withdrawal["withdrawn"]) == ("", first)
    assert "no previous champion" in withdrawal["reason"]
    assert withdrawal["serving"] == "no model: the sidecar's safe mode, no trades"
    assert world.tags(first)[STATUS_TAG] == "withdrawn"
    # The sidecar empties its champion slot: no model scores, nothing trades.
    assert emptied.changes["champion"] is SlotChange.REMOVED
    assert sidecar.get("champion") is None
    # The next challenger has to prove itself as shadow first; it does not take @champion.
    assert successor["move"] == "shadow" and successor["shadow"] == third
    assert world.aliases() == {"challenger": third, "shadow": third}
    registered = world.client().get_registered_model(world.name).tags
    assert registered[WITHDRAWN_TAG] == first and PREVIOUS_CHAMPION_TAG not in registered


def test_a_previous_champion_deleted_from_mlflow_is_not_rolled_back_to(world: World):
    market = build_market(world, seed=17)
    first = world.register_challenger()
    world.tick()
    second = world.register_challenger()
    promoted_by_hand(world, second, first, hours_ago=0.2)  # within probation
    world.client().delete_model_version(world.name, first)
    land(world, market, second, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=3)

    withdrawal = moved(world.tick())

    assert withdrawal["move"] == "withdraw" and withdrawal["version"] == second
    assert "within probation" in withdrawal["reason"]
    assert "champion" not in world.aliases()


def test_a_previous_champion_whose_model_no_longer_loads_is_not_rolled_back_to(
    world: World, tmp_path: Path
):
    # Arrange: the previous champion is still registered, but its ONNX file in the artifact
    # store was replaced (a truncated upload, a bad copy): the sidecar would refuse it.
    market = build_market(world, seed=19)
    first = world.register_challenger()
    world.tick()
    second = world.register_challenger()
    promoted_by_hand(world, second, first, hours_ago=7)
    source = world.client().get_model_version(world.name, first).source
    (Path(urlparse(source).path) / ONNX_FILE).write_bytes(b"not an onnx model")
    land(world, market, second, "champion", minutes=10, noise=1e-3, latency_ms=80.0, seed=4)
    sidecar = MirroredSlots(world.mlflow.tracking_uri, world.name, tmp_path, roles=("champion",))
    sidecar.refresh()

    # Act
    withdrawal = moved(world.tick())
    emptied = sidecar.refresh()

    # Assert: the breaching champion is withdrawn instead of handing @champion to a model
    # that cannot load (which would leave the breaching one serving), and the reason says why.
    assert withdrawal["move"] == "withdraw" and withdrawal["version"] == second
    assert f"previous champion v{first} cannot be restored" in withdrawal["reason"]
    assert "checksum mismatch" in withdrawal["reason"]
    assert "champion" not in world.aliases()
    assert world.tags(second)[STATUS_TAG] == "withdrawn"
    assert emptied.changes["champion"] is SlotChange.REMOVED
    registered = world.client().get_registered_model(world.name).tags
    assert PREVIOUS_CHAMPION_TAG not in registered and registered[WITHDRAWN_TAG] == second


def test_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRADING_ROLLOUT_CANARY_PERIOD_S", "120")
    monkeypatch.setenv("TRADING_ROLLOUT_MIN_SHADOW_PREDICTIONS", "60")

    policy = RolloutPolicyResource.from_settings().policy()

    assert policy.canary_period_s == 120.0 and policy.min_shadow_predictions == 60
    assert policy.max_error_rate == RolloutPolicyResource().max_error_rate


def test_rollout_sensor_runs_by_default_in_the_code_location():
    definitions = lazy_defs()

    sensor = definitions.get_sensor_def("model_rollout")
    served = {spec.key: spec for spec in definitions.resolve_all_asset_specs()}

    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {"mlflow", "iceberg", "landing", "rollout_policy"} <= set(sensor.required_resource_keys)
    deps = {dep.asset_key.to_user_string() for dep in served[dg.AssetKey("served_model")].deps}
    assert deps == {"challenger_model", "live_model_metrics"}


def test_live_model_metrics_asset_scores_the_log_and_writes_parquet(world: World, tmp_path):
    market = build_market(world, seed=3)
    champion = land(world, market, "1", "champion", minutes=20, noise=1e-3, seed=7)
    land(world, market, "2", "shadow", minutes=10, noise=2e-2, latency_ms=9.0, seed=8)
    output = tmp_path / "live_metrics"

    result = dg.materialize(
        [live_model_metrics],
        resources={
            "iceberg": world.iceberg,
            "landing": LandingResource(root=str(world.landing)),
        },
        run_config={
            "ops": {"live_model_metrics": {"config": {"output_dir": str(output)}}},
        },
    )

    assert result.success
    (event,) = result.asset_materializations_for_node("live_model_metrics")
    meta = {key: value.value for key, value in event.metadata.items()}
    stored = pl.read_parquet(output / METRICS_FILE).sort("role")
    assert stored.select("model_version", "role").rows() == [("1", "champion"), ("2", "shadow")]
    assert stored["matured"][0] == champion and stored["ic"][0] > 0.9
    assert stored["latency_p95_ms"][1] == pytest.approx(9.0)
    assert meta["matured"] == stored["matured"].sum()
    assert "| 1 | champion |" in str(meta["metrics"])
    assert str(meta["served"]).startswith("![served versions by role](data:image/png")
    # The watermark is the newest prediction whose 60 s outcome the bars already hold.
    newest_matured_s = market.scored_seconds(0)[-1]
    assert meta["watermark"] == pytest.approx(newest_matured_s + 0.05)
    ranges = pl.read_parquet(output / RANGES_FILE)
    assert ranges.select("role", "model_version").sort("role").rows() == [
        ("champion", "1"),
        ("shadow", "2"),
    ]


def test_live_model_metrics_without_predictions_says_why_it_has_no_watermark(
    world: World, tmp_path
):
    build_market(world, seed=5)

    result = dg.materialize(
        [live_model_metrics],
        resources={"iceberg": world.iceberg, "landing": LandingResource(root=str(world.landing))},
        run_config={
            "ops": {"live_model_metrics": {"config": {"output_dir": str(tmp_path / "out")}}}
        },
    )

    (event,) = result.asset_materializations_for_node("live_model_metrics")
    assert event.metadata["predictions"].value == 0
    assert "watermark" not in event.metadata
    assert event.metadata["watermark_note"].value == NO_MATURED_PREDICTIONS
