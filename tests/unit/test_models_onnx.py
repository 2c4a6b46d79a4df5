"""ONNX export parity gate and the serving wrapper, on tiny boosters trained on synthetic data."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import xgboost as xgb

from trading_assets.lib.models.inference import FeatureOrderError, OnnxModel, open_servable
from trading_assets.lib.models.onnx_export import (
    INPUT_NAME,
    PARITY_TOLERANCE,
    export_onnx,
    parity,
    recorded_feature_names,
)

N_FEATURES = 8
NAMES = [f"ret_{i}s" for i in range(N_FEATURES)]


def synthetic(seed: int, rows: int = 1_500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    # A non-zero mean target makes XGBoost 3's fitted base_score matter to the export.
    y = 3.0 + 2.0 * x[:, 0] - np.tanh(x[:, 1] * x[:, 2]) + 0.1 * rng.normal(size=rows)
    return x, y.astype(np.float32)


def train(seed: int, rounds: int = 40) -> xgb.Booster:
    x, y = synthetic(seed)
    data = xgb.DMatrix(x, label=y, feature_names=NAMES)
    params = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2, "seed": seed}
    return xgb.train(params, data, num_boost_round=rounds)


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    return train(seed=1)


@pytest.fixture(scope="module")
def onnx_bytes(booster: xgb.Booster) -> bytes:
    return export_onnx(booster, NAMES)


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return synthetic(seed=99, rows=500)[0]


def test_regression_export_passes_parity(booster, onnx_bytes, sample):
    report = parity(booster, onnx_bytes, sample)

    assert report.passed
    assert report.rows == 500
    assert report.max_abs_diff <= PARITY_TOLERANCE


def test_export_records_input_shape_and_feature_order(onnx_bytes):
    model = onnx.load_from_string(onnx_bytes)
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim

    assert graph_input.name == INPUT_NAME
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims[1].dim_value == N_FEATURES
    assert recorded_feature_names(onnx_bytes) == NAMES


def test_gate_rejects_an_export_of_a_different_booster(booster, sample):
    other = export_onnx(train(seed=2), NAMES)

    report = parity(booster, other, sample)

    assert not report.passed
    assert report.max_abs_diff > PARITY_TOLERANCE


def test_gate_rejects_a_perturbed_leaf(booster, onnx_bytes, sample):
    model = onnx.load_from_string(onnx_bytes)
    (trees,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor"]
    attrs = {a.name: a for a in trees.attribute}
    tree_ids = list(attrs["target_treeids"].ints)
    weights = attrs["target_weights"].floats
    # Every row passes through tree 0, so nudging all its leaves shifts every prediction.
    for i, tree in enumerate(tree_ids):
        if tree == 0:
            weights[i] += 1e-3
    broken = model.SerializeToString()

    report = parity(booster, broken, sample)

    assert not report.passed
    assert report.max_abs_diff == pytest.approx(1e-3, rel=0.05)


def test_export_rejects_names_that_disagree_with_the_booster(booster):
    with pytest.raises(ValueError, match="feature names"):
        export_onnx(booster, list(reversed(NAMES)))
    with pytest.raises(ValueError, match="features"):
        export_onnx(booster, NAMES[:-1])


def test_onnx_model_matches_xgboost_row_by_row(booster, onnx_bytes, sample):
    model = OnnxModel(onnx_bytes)
    expected = booster.inplace_predict(sample[:20])

    one = [model.predict_one(row, names=NAMES) for row in sample[:20]]
    many = model.predict(sample[:20])

    assert model.feature_names == tuple(NAMES)
    np.testing.assert_allclose(one, expected, atol=PARITY_TOLERANCE)
    np.testing.assert_allclose(many, expected, atol=PARITY_TOLERANCE)


def test_onnx_model_rejects_wrong_length_and_order(onnx_bytes, sample):
    model = OnnxModel(onnx_bytes)
    swapped = [NAMES[1], NAMES[0], *NAMES[2:]]

    with pytest.raises(FeatureOrderError, match=r"expected a vector of 8 features"):
        model.predict_one(sample[0][:-1])
    with pytest.raises(FeatureOrderError, match=r"feature 0 should be 'ret_0s', got 'ret_1s'"):
        model.predict_one(sample[0], names=swapped)
    with pytest.raises(FeatureOrderError, match=r"8 feature columns"):
        model.predict(sample[:, :5])
    with pytest.raises(FeatureOrderError, match="recorded"):
        OnnxModel(onnx_bytes, feature_names=swapped)


def zero_over_zero_model(width: int) -> bytes:
    """A model that scores a zero vector to NaN (x / x): loadable, but unfit to serve."""
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Div", [INPUT_NAME, INPUT_NAME], ["variable"])],
        "zero_over_zero",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("variable", onnx.TensorProto.FLOAT, [None, width])],
    )
    opsets = [helper.make_opsetid("", 13)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


def test_a_servable_version_opens_warmed_up_and_scores_as_exported(onnx_bytes, sample):
    # Act
    model = open_servable(onnx_bytes, NAMES, "7")

    # Assert
    assert model.feature_names == tuple(NAMES)
    assert model.predict_one(sample[0]) == OnnxModel(onnx_bytes).predict_one(sample[0])


def test_a_version_that_cannot_serve_is_refused_with_the_reason(onnx_bytes):
    # Arrange
    swapped = [NAMES[1], NAMES[0], *NAMES[2:]]
    nan_model = zero_over_zero_model(N_FEATURES)

    # Act / Assert
    with pytest.raises(FeatureOrderError, match="recorded"):
        open_servable(onnx_bytes, swapped, "7")
    with pytest.raises(ValueError, match="version 8 warm-up produced nan"):
        open_servable(nan_model, NAMES, "8")
