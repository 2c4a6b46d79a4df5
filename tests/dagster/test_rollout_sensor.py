"""The model_rollout sensor against a real sqlite MLflow, a real tmp Iceberg catalog holding
bars_1s, and a predictions log landed by the sidecar's own LandingWriter.

The data sits in the 25 minutes before the test runs (the sensor scores up to its own clock);
where a step needs a version to have served for a while, the test backdates the ``since`` tag
the sensor wrote, as if that much time had passed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from sensors.rollout import RolloutPolicyResource, model_rollout
from streaming.landing import PREDICTIONS_KIND, LandingWriter
from streaming.predictions import Prediction
from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.ingest.landing import LandingResource
from trading_assets.defs.models.live import NO_MATURED_PREDICTIONS, live_model_metrics
from trading_assets.lib.lakehouse.pipeline import to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import replace_partition
from trading_assets.lib.models.live_metrics import METRICS_FILE, RANGES_FILE
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.registry import register_model, set_alias
from trading_assets.lib.models.rollout import PREVIOUS_CHAMPION_TAG, STATUS_TAG, since_tag
from trading_assets.resources import IcebergCatalogResource, MlflowResource

NS = 1_000_000_000
HORIZON = 60
SYMBOL = "BTCUSDT"
FEATURES = ["mom_10s", "rv_60s"]
POLICY = RolloutPolicyResource(
    min_shadow_predictions=200,
    canary_period_s=300,
    min_canary_predictions=200,
    max_p95_latency_ms=20,
    max_error_rate=0.02,
    ic_floor=0.0,
    min_breach_predictions=60,
    breach_window_s=300,
    probation_s=3600,
)
_names = itertools.count()


@cache
def onnx_bytes() -> bytes:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURES))).astype(np.float32)
    data = xgb.DMatrix(x, label=x[:, 0], feature_names=FEATURES)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, data, num_boost_round=3)
    return export_onnx(booster, FEATURES)


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One store for the module (MLflow's sqlite schema takes seconds to create); a name per test.
    return tmp_path_factory.mktemp("mlflow")


@dataclass
class World:
    """Registry, lakehouse and landing of one test, and the sensor evaluated against them."""

    mlflow: MlflowResource
    iceberg: IcebergCatalogResource
    landing: Path
    instance: dg.DagsterInstance

    @property
    def name(self) -> str:
        return self.mlflow.model_name

    def client(self) -> MlflowClient:
        uri = self.mlflow.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def register_challenger(self) -> str:
        version = register_model(
            self.mlflow.ready_uri(),
            self.name,
            onnx_bytes(),
            FEATURES,
            "signal_trades_v1",
            dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 2, tzinfo=dt.UTC),
            metrics={},
            params={},
            artifact_location=self.mlflow.artifact_location,
        )
        set_alias(self.mlflow.tracking_uri, self.name, "challenger", version.version)
        return str(version.version)

    def aliases(self) -> dict[str, str]:
        aliases = self.client().get_registered_model(self.name).aliases
        return {alias: str(version) for alias, version in aliases.items()}

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.name, version).tags)

    def backdate(self, version: str, role: str, seconds: float) -> None:
        """As if ``version`` had taken ``role`` ``seconds`` ago."""
        since = time.time_ns() - int(seconds * NS)
        self.client().set_model_version_tag(self.name, version, since_tag(role), str(since))

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance,
            resources={
                "mlflow": self.mlflow,
                "iceberg": self.iceberg,
                "landing": LandingResource(root=str(self.landing)),
                "rollout_policy": POLICY,
            },
        )
        result = model_rollout(context)
        assert isinstance(result, dg.SensorResult)
        return result


def moved(result: dg.SensorResult) -> dict:
    (event,) = result.asset_events
    assert isinstance(event, dg.AssetMaterialization)
    assert event.asset_key == dg.AssetKey("served_model")
    return {key: value.value for key, value in event.metadata.items()}


@pytest.fixture
def world(tmp_path: Path, mlflow_root: Path) -> World:
    root = mlflow_root.resolve()
    mlflow = MlflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        models_dir=str(tmp_path / "models"),
        model_name=f"signal_rollout_{next(_names)}",
    )
    return World(
        mlflow=mlflow,
        iceberg=IcebergCatalogResource.local(tmp_path / "iceberg"),
        landing=tmp_path / "landing",
        instance=dg.DagsterInstance.ephemeral(),
    )


@dataclass(frozen=True)
class Market:
    """1 s closes over the last 25 minutes (bars end a minute before now) and, per prediction
    second, the 60 s forward log return those bars will realize."""

    first_s: int
    closes: np.ndarray

    def realized(self, second: int) -> float:
        i = second - self.first_s - 1  # the bar ending at `second`
        return math.log(self.closes[i + HORIZON] / self.closes[i])

    def scored_seconds(self, start_s: int) -> range:
        """Seconds from ``start_s`` whose outcome the bars already hold."""
        return range(max(start_s, self.first_s + 1), self.first_s + len(self.closes) - HORIZON)


def build_market(world: World, seed: int = 7) -> Market:
    now_s = time.time_ns() // NS
    first_s, last_s = now_s - 25 * 60, now_s - 60
    rng = np.random.default_rng(seed)
    closes = 60_000 * np.exp(np.cumsum(rng.normal(0, 3e-4, last_s - first_s)))
    frame = pl.DataFrame(
        {
            "symbol": SYMBOL,
            "bar_start": [dt.datetime.fromtimestamp(s, dt.UTC) for s in range(first_s, last_s)],
            "close": closes,
        }
    ).with_columns(
        trade_date=pl.col("bar_start").dt.date(),
        **{c: pl.col("close") for c in ("open", "high", "low", "vwap")},
        **{c: pl.lit(1.0) for c in ("volume", "notional", "buy_volume", "sell_volume")},
        trade_count=pl.lit(1, pl.Int64),
        first_trade_id=pl.int_range(pl.len(), dtype=pl.Int64),
        last_trade_id=pl.int_range(pl.len(), dtype=pl.Int64),
    )
    lake = world.iceberg.lakehouse()
    table = lake.table(BARS_1S_TABLE)
    for (day,), bars in frame.group_by("trade_date"):  # the window may cross midnight
        assert isinstance(day, dt.date)
        replace_partition(table, day, SYMBOL, [to_iceberg_arrow(bars, table.schema())])
    return Market(first_s, closes)


def land(
    world: World,
    market: Market,
    version: str,
    role: str,
    *,
    minutes: float,
    noise: float,
    latency_ms: float = 3.0,
    seed: int = 1,
) -> int:
    """Predictions of ``version`` in ``role`` over the last ``minutes``: the realized return
    plus noise (more noise, lower live IC). Returns how many have an outcome already."""
    rng = np.random.default_rng(seed)
    start_s = time.time_ns() // NS - int(minutes * 60)
    seconds = market.scored_seconds(start_s)
    with LandingWriter(world.landing, PREDICTIONS_KIND, time_fields=("timestamp",)) as writer:
        for second in seconds:
            predicted = market.realized(second) + rng.normal(0, noise)
            writer.write(
                Prediction(
                    symbol=SYMBOL,
                    timestamp=second * NS + 50_000_000,
                    signal=math.tanh(predicted / 1e-3),
                    confidence=0.5,
                    risk_score=0.0,
                    should_trade=False,
                    model_version=version,
                    fallback_level=0,
                    latency_ms=latency_ms,
                    role=role,  # type: ignore[arg-type]
                    predicted_return=predicted,
                )
            )
    return len(seconds)


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
    # MLflow holds the outcome: v1 serves again, v2 is marked and never picked up again.
    assert world.aliases() == {"champion": first, "challenger": second}
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
    assert again.skip_reason is not None and not again.asset_events


def test_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRADING_ROLLOUT_CANARY_PERIOD_S", "120")
    monkeypatch.setenv("TRADING_ROLLOUT_MIN_SHADOW_PREDICTIONS", "60")

    policy = RolloutPolicyResource.from_env().policy()

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
