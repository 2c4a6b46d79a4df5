"""The model_backtests sensor: each hour, one backtest run per serving version (@champion,
@canary, @shadow), adding the version's partition when it lacks one; nothing without them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from sensors.backtests import model_backtests
from trading_assets.lib.asset_names import MODEL_VERSIONS
from trading_assets.lib.models.registry import set_alias

from .rollout_world import World, new_world

pytestmark = pytest.mark.backtest


@pytest.fixture
def world(tmp_path: Path) -> World:
    return new_world(tmp_path, tmp_path / "mlflow")


def tick(world: World) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=world.instance, resources={"mlflow": world.mlflow})
    result = model_backtests(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_each_serving_version_gets_a_backtest_run_and_a_partition(world: World):
    # Arrange: three versions, two of them serving; one already a partition
    champion, _, shadow = (world.register_challenger() for _ in range(3))
    uri = world.mlflow.tracking_uri
    set_alias(uri, world.name, "champion", champion)
    set_alias(uri, world.name, "shadow", shadow)
    world.instance.add_dynamic_partitions(MODEL_VERSIONS, [champion])

    # Act
    result = tick(world)

    # Assert: a run per serving version, champion first; the missing partition is added
    runs = result.run_requests or []
    assert [r.partition_key for r in runs] == [champion, shadow]
    assert len({r.run_key for r in runs}) == 2
    (added,) = result.dynamic_partitions_requests or []
    assert isinstance(added, dg.AddDynamicPartitionsRequest)
    assert list(added.partition_keys) == [shadow]


def test_nothing_is_requested_while_no_version_serves(world: World):
    world.register_challenger()

    result = tick(world)

    assert not result.run_requests and not result.dynamic_partitions_requests
