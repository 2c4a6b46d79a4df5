"""XGBoost → ONNX export with a numerical parity gate.

The sidecar serves ONNX, not XGBoost, so a model is only worth registering when the exported
graph reproduces the booster's own predictions. Converters have silently broken trees before
(onnxmltools#448: wrong base_score / dropped trees after an XGBoost upgrade), so every export
is checked on a fixed sample and the model goes no further when the gate fails.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxmltools
import onnxruntime as ort
import xgboost as xgb
from onnxmltools.convert.common.data_types import FloatTensorType

from trading_assets.lib.models.inference import FEATURE_NAMES_KEY

INPUT_NAME = "features"
PARITY_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute gap between XGBoost and ONNX Runtime on a sample, and the verdict."""

    max_abs_diff: float
    rows: int
    passed: bool
    tolerance: float = PARITY_TOLERANCE


def export_onnx(booster: xgb.Booster, feature_names: Sequence[str]) -> bytes:
    """Convert a booster to a serialized ONNX model with one float32 input ``[None, n]``.

    ``feature_names`` is the column order the booster was trained on; it is recorded in the
    model's metadata. The converter only understands split features named ``f0..fN``, so the
    conversion runs on a copy with the names stripped (XGBoost then falls back to ``f%d``).
    """
    names = list(feature_names)
    if len(names) != booster.num_features():
        raise ValueError(
            f"booster has {booster.num_features()} features but {len(names)} names were given"
        )
    if booster.feature_names is not None and list(booster.feature_names) != names:
        raise ValueError("feature_names do not match the booster's own feature names and order")
    anonymous = booster.copy()
    anonymous.feature_names = None
    anonymous.feature_types = None
    model = onnxmltools.convert_xgboost(
        anonymous,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(names)]))],
    )
    onnx.helper.set_model_props(model, {FEATURE_NAMES_KEY: json.dumps(names)})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def recorded_feature_names(onnx_bytes: bytes) -> list[str] | None:
    """Feature order stored by :func:`export_onnx`, or None for a model exported elsewhere."""
    model = onnx.load_from_string(onnx_bytes)
    for prop in model.metadata_props:
        if prop.key == FEATURE_NAMES_KEY:
            return list(json.loads(prop.value))
    return None


def parity(
    booster: xgb.Booster,
    onnx_bytes: bytes,
    sample: np.ndarray,
    tolerance: float = PARITY_TOLERANCE,
) -> ParityReport:
    """Compare XGBoost's predictions with ONNX Runtime's on ``sample`` (rows × features).

    Both sides see the same float32 matrix, because ONNX Runtime computes in float32 and the
    gate must measure the converter, not input rounding. ``inplace_predict`` is used because it
    ignores feature names, so the check does not depend on how the sample's columns are named.
    """
    x = np.ascontiguousarray(sample, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"sample must be a non-empty 2-D matrix, got shape {x.shape}")
    expected = np.asarray(booster.inplace_predict(x), dtype=np.float64).reshape(x.shape[0], -1)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = np.asarray(session.run(None, {INPUT_NAME: x})[0], dtype=np.float64)
    got = got.reshape(x.shape[0], -1)
    if got.shape != expected.shape:
        # A shape mismatch is a broken export too; report it as an infinite gap.
        return ParityReport(float("inf"), x.shape[0], False, tolerance)
    diff = float(np.max(np.abs(got - expected)))
    passed = bool(np.isfinite(diff) and diff <= tolerance)
    return ParityReport(diff, x.shape[0], passed, tolerance)
