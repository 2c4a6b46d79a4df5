"""Real BTCUSDT and ETHUSDT minutes through the model assets, as the 1 s training frame goes:
full model → incremental model → ONNX (parity check) → MLflow version → evaluation gate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from mlflow import MlflowClient

from tests.unit.test_models_klines import FEATURES, LABEL, PARAMS, TREES, klines_frame
from trading_assets.defs.models.registry import (
    beats_baselines,
    challenger_model,
    onnx_model,
    onnx_parity,
    registered_model,
)
from trading_assets.defs.models.training import full_model, incremental_model
from trading_assets.lib import storage
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.recent import RECENT_PREFIX
from trading_assets.lib.feature_store.training import write_training_frame
from trading_assets.lib.features import is_level_feature
from trading_assets.lib.models import artifacts as files
from trading_assets.lib.models import beats_baselines as recipe_beats_baselines
from trading_assets.lib.models import train_full
from trading_assets.lib.models.training import new_trees_hold_up
from trading_assets.resources import FeastResource, MlflowResource

FOLDS = 3
NEW_TREES = 5
CHAIN = [full_model, incremental_model, onnx_model, onnx_parity, registered_model]
GATE = [beats_baselines, challenger_model]


def test_real_klines_run_the_model_assets_end_to_end_like_the_library(
    tmp_path, shared_data: Path, monkeypatch
):
    # Arrange: the klines' training frame, and its newest day as the incremental rows
    monkeypatch.delenv("MODEL_GATE_IC_MARGIN", raising=False)
    monkeypatch.setenv("MODEL_GATE_PNL_MARGIN", "0")
    monkeypatch.delenv("MODEL_GATE_INCREMENTAL_IC_TOLERANCE", raising=False)
    monkeypatch.delenv("MODEL_GATE_MAX_IC_P_VALUE", raising=False)
    frame = klines_frame(shared_data)
    feast = FeastResource.local(tmp_path / "feast")
    write_training_frame(frame, feast.training_dir(), spec.TRAINING_SERVICE)
    newest_day = frame.filter(
        pl.col("event_timestamp") > frame["event_timestamp"].max() - dt.timedelta(days=1)
    )
    write_training_frame(newest_day, feast.training_dir(), RECENT_PREFIX + spec.TRAINING_SERVICE)
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
    config = {"n_trees": TREES, "n_folds": FOLDS, "threads": 1, "label": LABEL}

    # Act
    result = dg.materialize(
        [*CHAIN, *GATE],
        resources={"feast": feast, "mlflow": mlflow},
        run_config={
            "ops": {
                "full_model": {"config": config | {"features": FEATURES}},
                "incremental_model": {"config": {"max_new_trees": NEW_TREES}},
            }
        },
        raise_on_error=False,
    )

    # Assert: the asset is the library call: same rows, same out-of-sample scores
    (event,) = result.asset_materializations_for_node("full_model")
    meta = {key: value.value for key, value in event.metadata.items()}
    saved = files.load_model(mlflow.model_location(files.FULL_FILE))
    direct = train_full(frame, FEATURES, LABEL, PARAMS, n_trees=TREES, n_folds=FOLDS)
    assert saved.report is not None and direct.report is not None
    assert meta["training_rows"] == frame.height
    assert saved.feature_names == tuple(FEATURES)
    assert meta["model_ic"] == pytest.approx(direct.report.pooled.model.ic, abs=1e-12)
    # nan_ok: buy-and-hold has no RMSE (it forecasts no return)
    assert saved.report.pooled.as_dict() == pytest.approx(
        direct.report.pooled.as_dict(), nan_ok=True
    )
    assert saved.report.embargo_s == 300  # one label horizon by default
    assert len(saved.report.sample_predicted) == len(saved.report.sample_realized) > 1_000
    assert str(meta["predicted_vs_realized"]).startswith("![")

    # Assert: the rest of the chain ran on the real minutes
    incremental = files.load_model(mlflow.model_location(files.INCREMENTAL_FILE))
    assert incremental.trees == TREES + NEW_TREES
    assert incremental.training_rows == newest_day.height
    assert incremental.holdout is not None
    (parity,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "onnx_parity"]
    assert parity.passed and parity.metadata["max_abs_diff"].value <= 1e-5
    (registered,) = result.asset_materializations_for_node("registered_model")
    version = str(registered.metadata["version"].value)
    client = MlflowClient(tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.tracking_uri)
    run = client.get_run(str(client.get_model_version("signal", version).run_id))
    assert run.data.metrics["wf_model_ic"] == pytest.approx(saved.report.pooled.model.ic)
    assert "holdout_model_ic" in run.data.metrics

    # Assert: the gate says what the library says, and only a pass gets @challenger
    expected = recipe_beats_baselines(saved.report.pooled, 0.0, 0.0) and new_trees_hold_up(
        incremental.holdout, 0.05
    )
    (gate,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "beats_baselines"]
    assert gate.passed is expected
    aliases = dict(client.get_registered_model("signal").aliases)
    assert (aliases == {"challenger": version}) is expected
    assert bool(result.asset_materializations_for_node("challenger_model")) is expected


def test_the_klines_full_model_refuses_the_level_features_the_klines_frame_holds(
    tmp_path, shared_data: Path
):
    # Arrange: the frame keeps vwap (display); the old inputs were the whole price group
    frame = klines_frame(shared_data)
    levels = [name for name in frame.columns if is_level_feature(name)]
    feast = FeastResource.local(tmp_path / "feast")
    write_training_frame(frame, feast.training_dir(), spec.TRAINING_SERVICE)
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
    old_inputs = [*FEATURES, *levels]

    # Act
    result = dg.materialize(
        [full_model],
        resources={"feast": feast, "mlflow": mlflow},
        run_config={"ops": {"full_model": {"config": {"label": LABEL, "features": old_inputs}}}},
        raise_on_error=False,
    )

    # Assert
    assert levels == ["vwap_300s", "vwap_900s", "vwap_3600s"]
    assert not set(levels) & set(FEATURES)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error is not None and error.cause is not None
    assert f"{levels} are level features" in error.cause.message
    assert not storage.exists(mlflow.model_location(files.FULL_FILE))
