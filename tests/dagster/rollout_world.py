"""The rollout sensor's test world: a real sqlite MLflow registry, a tmp Iceberg catalog holding
bars_1s over the last 25 minutes, and a predictions log landed by the sidecar's LandingWriter.

The data sits in the 25 minutes before the test runs (the sensor scores up to its own clock);
where a step needs a version to have served for a while, a test backdates the ``since`` tag the
sensor wrote, as if that much time had passed.
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
import xgboost as xgb
from mlflow import MlflowClient

from sensors.rollout import RolloutPolicyResource, model_rollout
from streaming.landing import PREDICTIONS_KIND, LandingWriter
from streaming.predictions import Prediction
from trading_assets.defs.ingest.landing import LandingResource
from trading_assets.lib.lakehouse.pipeline import to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import replace_partition
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.registry import record_gate_verdict, register_model, set_alias
from trading_assets.lib.models.rollout import since_tag
from trading_assets.resources import IcebergCatalogResource, MlflowResource

NS = 1_000_000_000
HORIZON = 60
INSTRUMENT = "BINANCE:BTCUSDT"
FEATURES = ["mom_10s", "rv_60s"]
POLICY = RolloutPolicyResource(
    min_shadow_predictions=200,
    canary_period_s=300,
    min_canary_predictions=200,
    max_p95_latency_ms=20,
    max_error_rate=0.02,
    ic_floor=0.0,
    ic_floor_z=0.0,  # the floor as it stands: these cases judge the moves, not the noise
    min_breach_predictions=60,
    breach_window_s=300,
    probation_s=3600,
)
NAMES = itertools.count()


@cache
def onnx_bytes() -> bytes:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURES))).astype(np.float32)
    data = xgb.DMatrix(x, label=x[:, 0], feature_names=FEATURES)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, data, num_boost_round=3)
    return export_onnx(booster, FEATURES)


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

    def register_version(self) -> str:
        """A new version of the test model, with no gate verdict and no alias."""
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
        return str(version.version)

    def register_challenger(self) -> str:
        """A new version that passed the gate, made @challenger the way the gate allows."""
        number = self.register_version()
        uri = self.mlflow.tracking_uri
        record_gate_verdict(uri, self.name, number, True, "rollout test model")
        set_alias(uri, self.name, "challenger", number)
        return number

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


def new_world(tmp_path: Path, mlflow_root: Path) -> World:
    """A world of its own (a fresh model name) in the shared MLflow store under ``mlflow_root``."""
    root = mlflow_root.resolve()
    mlflow = MlflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        models_uri=str(tmp_path / "models"),
        model_name=f"signal_rollout_{next(NAMES)}",
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
            "instrument": INSTRUMENT,
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
        replace_partition(table, day, INSTRUMENT, [to_iceberg_arrow(bars, table.schema())])
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
                    symbol=INSTRUMENT,
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
