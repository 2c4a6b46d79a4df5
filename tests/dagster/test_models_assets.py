"""Training frame → full → incremental → ONNX (parity check) → MLflow → evaluation gate →
@challenger, on synthetic frames."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from trading_assets.defs.models.registry import (
    beats_baselines,
    challenger_model,
    onnx_model,
    onnx_parity,
    parity_service,
    registered_model,
)
from trading_assets.defs.models.training import full_model, incremental_model
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.training import write_training_frame
from trading_assets.lib.features import label_names
from trading_assets.resources import FeastResource, MlflowResource

from .watermarks import MODELS_TEST, assets_of, expected_states, watermark_states

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
TIMES_PER_INSTRUMENT = 1_500
STEP_S = 10
RECENT_ROWS = 500
MODELS = [full_model, incremental_model, onnx_model, registered_model, challenger_model]


def synthetic_frame(seed: int, informative: bool) -> pl.DataFrame:
    """Trades-only features and labels, sampled every 10 s for two instruments."""
    rng = np.random.default_rng(seed)
    names = spec.service_features(spec.TRAINING_SERVICE)
    value, sign = label_names(spec.FEATURE_CONFIG)
    horizon = dt.timedelta(seconds=spec.FEATURE_CONFIG.label_horizon_s)
    frames = []
    for instrument in INSTRUMENTS:
        times = [START + dt.timedelta(seconds=STEP_S * i) for i in range(TIMES_PER_INSTRUMENT)]
        x = rng.normal(size=(TIMES_PER_INSTRUMENT, len(names)))
        noise = rng.normal(scale=0.004, size=TIMES_PER_INSTRUMENT)
        # A real but noisy link: two features explain part of the forward return.
        y = 0.0015 * x[:, 0] - 0.001 * x[:, 3] + noise if informative else noise
        frames.append(
            pl.DataFrame({name: x[:, i] for i, name in enumerate(names)}).with_columns(
                pl.Series(spec.ENTITY, [instrument] * TIMES_PER_INSTRUMENT),
                pl.Series(spec.TIMESTAMP_FIELD, times),
                pl.Series(value, y),
                pl.Series(sign, np.sign(y).astype(np.int8)),
                pl.Series("label_end", [t + horizon for t in times]),
            )
        )
    return pl.concat(frames).sort(spec.TIMESTAMP_FIELD, spec.ENTITY)


def run_models(tmp_path: Path, informative: bool) -> tuple[dg.ExecuteInProcessResult, dict]:
    feast = FeastResource.local(tmp_path / "feast")
    frame = synthetic_frame(seed=3, informative=informative)
    write_training_frame(frame, feast.training_dir(), spec.TRAINING_SERVICE)
    # The newest rows, as recent_training_rows leaves them (that asset is tested on a lakehouse).
    recent = frame.sort(spec.TIMESTAMP_FIELD).tail(RECENT_ROWS)
    write_training_frame(recent, feast.training_dir(), "recent_" + spec.TRAINING_SERVICE)
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*MODELS, onnx_parity, beats_baselines],
        resources={"feast": feast, "mlflow": mlflow},
        run_config={"ops": {"full_model": {"config": {"n_trees": 60}}}},
        raise_on_error=False,
        instance=instance,
    )
    return result, {"mlflow": mlflow, "instance": instance}


def registry(mlflow: MlflowResource) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.tracking_uri)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def check(result: dg.ExecuteInProcessResult, name: str):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


@pytest.mark.parametrize("informative", [True, False], ids=["signal", "noise"])
def test_models_pipeline_registers_and_gates(tmp_path, informative):
    result, resources = run_models(tmp_path, informative)

    assert check(result, "onnx_parity").passed
    full_meta = metadata(result, "full_model")
    assert full_meta["training_rows"] == len(INSTRUMENTS) * TIMES_PER_INSTRUMENT
    assert "| model |" in full_meta["metrics"]
    horizon_s = spec.FEATURE_CONFIG.label_horizon_s
    assert f"(embargo {horizon_s:g} s)" in full_meta["metrics"]  # one label horizon by default
    assert full_meta["predicted_vs_realized"].startswith("![")
    assert full_meta["feature_importance"].startswith("![")
    incremental = metadata(result, "incremental_model")
    assert incremental["new_trees"] == 10
    assert incremental["training_rows"] == RECENT_ROWS
    assert "full + new trees" in incremental["holdout"]
    reg_meta = metadata(result, "registered_model")
    gate = check(result, "beats_baselines")
    assert gate.passed is informative
    assert {"model_ic", "best_baseline_ic", "model_pnl", "holdout_incremental_ic"} <= set(
        gate.metadata
    )
    assert gate.metadata["walk_forward_passed"].value is informative

    client = registry(resources["mlflow"])
    versions = client.search_model_versions("name = 'signal'")
    assert [str(v.version) for v in versions] == [reg_meta["version"]]
    run = client.get_run(str(versions[0].run_id))
    assert {"wf_model_ic", "holdout_model_ic", "holdout_full_ic"} <= set(run.data.metrics)
    aliases = {k: str(v) for k, v in client.get_registered_model("signal").aliases.items()}
    # Each model asset's watermark is the newest row it was trained on.
    newest_row = synthetic_frame(seed=3, informative=informative)[spec.TIMESTAMP_FIELD].max()
    assert isinstance(newest_row, dt.datetime)
    assert reg_meta["watermark"] == incremental["watermark"] == newest_row.timestamp()
    states = watermark_states(resources["instance"])
    if informative:
        assert result.success
        assert metadata(result, "challenger_model")["version"] == reg_meta["version"]
        assert metadata(result, "challenger_model")["watermark"] == reg_meta["watermark"]
        assert states == expected_states(assets_of(MODELS_TEST))
        assert aliases == {"challenger": reg_meta["version"]}
    else:
        # The blocking check stops the run before challenger_model: recorded, not aliased.
        assert not result.success
        assert not result.asset_materializations_for_node("challenger_model")
        assert states == expected_states(assets_of(MODELS_TEST) - {"challenger_model"})
        assert aliases == {}


def test_parity_is_checked_on_a_training_frame_that_holds_every_feature_of_the_model(tmp_path):
    # Arrange
    feast = FeastResource.local(tmp_path / "feast")
    trades_only = spec.service_features(spec.TRAINING_SERVICE)
    every = spec.service_features("signal_v2")
    book = [name for name in every if name not in trades_only]
    with_book = [*trades_only, book[0]]
    frame = synthetic_frame(seed=1, informative=False)

    # Act / Assert: a model of the book service needs that service's frame
    with pytest.raises(ValueError, match="no feature service has a training frame"):
        parity_service(feast, trades_only)
    write_training_frame(frame, feast.training_dir(), spec.TRAINING_SERVICE)
    assert parity_service(feast, trades_only) == spec.TRAINING_SERVICE
    with pytest.raises(ValueError, match="no feature service has a training frame"):
        parity_service(feast, with_book)
    book_frame = frame.with_columns(pl.lit(0.0).alias(name) for name in book)
    write_training_frame(book_frame, feast.training_dir(), "signal_v2")
    assert parity_service(feast, with_book) == "signal_v2"
    assert parity_service(feast, trades_only) == spec.TRAINING_SERVICE  # preferred when it serves
