"""Registering ONNX signal models in a real sqlite-backed MLflow and loading them by alias."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from trading_assets.lib.models.inference import OnnxModel
from trading_assets.lib.models.onnx_export import export_onnx, parity
from trading_assets.lib.models.registry import (
    load_by_alias,
    record_gate_verdict,
    register_model,
    set_alias,
)

NAME = "signal_btcusdt"
SERVICE = "signal_v1"
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(2024, 3, 8, tzinfo=dt.UTC)


def trained(names: list[str], seed: int) -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(800, len(names))).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, -1] + 0.05 * rng.normal(size=800)).astype(np.float32)
    data = xgb.DMatrix(x, label=y, feature_names=names)
    params = {"objective": "reg:squarederror", "max_depth": 3, "seed": seed}
    return xgb.train(params, data, num_boost_round=20), x[:200]


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    # Explicit URIs everywhere: the library never relies on mlflow's process-global tracking URI.
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def register(uri: str, tmp_path: Path, names: list[str], seed: int, alias=None):
    booster, sample = trained(names, seed)
    onnx_bytes = export_onnx(booster, names)
    report = parity(booster, onnx_bytes, sample)
    version = register_model(
        uri,
        NAME,
        onnx_bytes,
        names,
        SERVICE,
        START,
        END,
        metrics={"ic": 0.05 + seed / 100},
        params={"max_depth": 3, "seed": seed},
        parity_report=report,
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    if alias is not None:  # as the evaluation gate and challenger_model would
        record_gate_verdict(uri, NAME, version.version, True, "test model")
        set_alias(uri, NAME, alias, version.version)
    return version, onnx_bytes, booster, sample


def test_alias_moves_and_loads_the_right_version(tracking_uri, tmp_path):
    first_names = ["ret_1s", "ret_5s", "spread_bps", "imbalance"]
    second_names = ["imbalance", "ret_1s", "ret_5s", "spread_bps", "vol_30s"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    v1, bytes1, _, _ = register(tracking_uri, tmp_path, first_names, seed=1, alias="challenger")
    loaded1 = load_by_alias(tracking_uri, NAME, "challenger")
    v2, bytes2, booster2, sample2 = register(
        tracking_uri, tmp_path, second_names, seed=2, alias="challenger"
    )
    loaded2 = load_by_alias(tracking_uri, NAME, "challenger")

    assert (str(v1.version), str(v2.version)) == ("1", "2")
    assert loaded1.version == "1" and loaded1.onnx_bytes == bytes1
    assert loaded1.feature_names == first_names
    assert loaded2.version == "2" and loaded2.onnx_bytes == bytes2
    assert loaded2.feature_names == second_names
    assert loaded2.metadata["feature_service"] == SERVICE
    assert loaded2.metadata["data_start"] == "2024-03-01T00:00:00+00:00"
    assert loaded2.metadata["data_end"] == "2024-03-08T00:00:00+00:00"
    # The alias moved: version 1 no longer carries it.
    assert client.get_model_version(NAME, "1").aliases == []
    assert client.get_model_version(NAME, "2").aliases == ["challenger"]
    # The loaded artifact serves the same predictions as the booster it came from.
    served = OnnxModel(loaded2.onnx_bytes, loaded2.feature_names).predict(sample2[:10])
    np.testing.assert_allclose(served, booster2.inplace_predict(sample2[:10]), atol=1e-5)


def test_run_records_lineage_params_and_metrics(tracking_uri, tmp_path):
    names = ["ret_1s", "ret_5s", "spread_bps"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    version, _, _, _ = register(tracking_uri, tmp_path, names, seed=3)
    assert version.run_id is not None
    run = client.get_run(version.run_id)

    assert run.data.params == {"max_depth": "3", "seed": "3"}
    assert run.data.metrics["ic"] == pytest.approx(0.08)
    assert run.data.metrics["onnx_parity_max_abs_diff"] <= 1e-5
    assert run.data.tags["feature_service"] == SERVICE
    assert run.data.tags["data_start"] == "2024-03-01T00:00:00+00:00"
    assert version.tags["feature_count"] == "3"
    assert str(run.info.artifact_uri).startswith((tmp_path / "artifacts").as_uri())


def test_version_without_alias_has_none_and_stages_stay_unused(tracking_uri, tmp_path):
    names = ["ret_1s", "spread_bps"]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    register(tracking_uri, tmp_path, names, seed=1, alias="challenger")
    plain, _, _, _ = register(tracking_uri, tmp_path, names, seed=2)
    set_alias(tracking_uri, NAME, "champion", "1")

    assert plain.aliases == []
    assert client.get_model_version(NAME, plain.version).aliases == []
    assert load_by_alias(tracking_uri, NAME, "champion").version == "1"
    assert load_by_alias(tracking_uri, NAME, "challenger").version == "1"
    for mv in client.search_model_versions(f"name='{NAME}'"):
        assert mv.current_stage in (None, "None")
    with pytest.raises(MlflowException):
        load_by_alias(tracking_uri, NAME, "canary")
    with pytest.raises(ValueError, match="unknown alias"):
        set_alias(tracking_uri, NAME, "Production", "1")


def test_failed_parity_report_is_refused(tracking_uri, tmp_path):
    names = ["ret_1s", "spread_bps"]
    booster, sample = trained(names, seed=1)
    other_bytes = export_onnx(trained(names, seed=2)[0], names)
    report = parity(booster, other_bytes, sample)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    with pytest.raises(ValueError, match="parity gate failed"):
        register_model(
            tracking_uri,
            NAME,
            other_bytes,
            names,
            SERVICE,
            START,
            END,
            {},
            {},
            parity_report=report,
        )

    assert client.search_registered_models() == []
