"""A small ONNX Runtime wrapper for serving one model in a sidecar.

One ``InferenceSession`` per model, built once: session construction costs milliseconds while a
single-row prediction costs microseconds. Threads are pinned to one because a sidecar scores one
row at a time next to other processes; a thread pool only adds wake-up latency at that size.

:func:`open_servable` is the sidecar's whole check that a version can serve (session, feature
list, one warm-up prediction); the rollout sensor runs the same check before it restores one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

# Feature order travels inside the ONNX file so a serving process can check it without MLflow.
# Only onnxruntime is needed to read it: a serving process never loads the exporters.
FEATURE_NAMES_KEY = "feature_names"


class FeatureOrderError(ValueError):
    """The caller's features do not match the model's recorded list (length, names or order)."""


def single_thread_options() -> ort.SessionOptions:
    """Session options for a latency-bound sidecar: one thread, no spinning, full graph opts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads would burn a core between requests for no gain with one thread.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxModel:
    """An ONNX regression model with a fixed feature order.

    ``feature_names`` is the order the model expects. When omitted it is read from the ONNX
    metadata written by ``export_onnx``; when both exist they must agree, so a registry entry and
    its artifact can never disagree silently.
    """

    def __init__(self, onnx_bytes: bytes, feature_names: Sequence[str] | None = None) -> None:
        self._session = ort.InferenceSession(
            onnx_bytes, sess_options=single_thread_options(), providers=["CPUExecutionProvider"]
        )
        stored = self._session.get_modelmeta().custom_metadata_map.get(FEATURE_NAMES_KEY)
        recorded = None if stored is None else list(json.loads(stored))
        if feature_names is None and recorded is None:
            raise FeatureOrderError("the ONNX model records no feature list; pass feature_names")
        names = list(feature_names) if feature_names is not None else list(recorded or [])
        if recorded is not None and names != recorded:
            detail = _first_difference(recorded, names)
            raise FeatureOrderError(f"feature list differs from the model's recorded one: {detail}")
        model_input = self._session.get_inputs()[0]
        width = model_input.shape[1] if len(model_input.shape) == 2 else None
        if isinstance(width, int) and width != len(names):
            raise FeatureOrderError(f"model input has {width} columns but {len(names)} names")
        self.feature_names: tuple[str, ...] = tuple(names)
        self._input = model_input.name
        self._output = self._session.get_outputs()[0].name
        self._width = len(names)

    def check_features(self, names: Sequence[str]) -> None:
        """Raise :class:`FeatureOrderError` unless ``names`` is exactly the model's order."""
        if tuple(names) != self.feature_names:
            raise FeatureOrderError(_first_difference(list(self.feature_names), list(names)))

    def predict_one(
        self, vector: Sequence[float] | np.ndarray, names: Sequence[str] | None = None
    ) -> float:
        """Score one row given in the model's feature order (checked when ``names`` is given)."""
        if names is not None:
            self.check_features(names)
        row = np.asarray(vector, dtype=np.float32)
        if row.shape != (self._width,):
            raise FeatureOrderError(
                f"expected a vector of {self._width} features, got shape {row.shape}"
            )
        out = self._session.run([self._output], {self._input: row.reshape(1, self._width)})[0]
        return float(np.asarray(out).reshape(-1)[0])

    def predict(self, matrix: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        """Score a rows × features matrix; returns one float32 prediction per row."""
        if names is not None:
            self.check_features(names)
        x = np.ascontiguousarray(matrix, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._width:
            raise FeatureOrderError(
                f"expected a matrix with {self._width} feature columns, got shape {x.shape}"
            )
        out = self._session.run([self._output], {self._input: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(x.shape[0])


def warm_up_model(model: OnnxModel, version: str) -> None:
    """Run one prediction so the first live call pays no lazy initialisation.

    A model that cannot even score a zero vector to a finite number is refused here rather than
    discovered on the hot path.
    """
    value = model.predict_one(np.zeros(len(model.feature_names), dtype=np.float32))
    if not math.isfinite(value):
        raise ValueError(f"version {version} warm-up produced {value}")


def open_servable(onnx_bytes: bytes, feature_names: Sequence[str], version: str) -> OnnxModel:
    """A version's model opened and warmed up as the sidecar serves it; raises when it cannot
    serve (a session that does not open, a feature list that disagrees, a non-finite score)."""
    model = OnnxModel(onnx_bytes, feature_names)
    warm_up_model(model, version)
    return model


def _first_difference(expected: list[str], got: list[str]) -> str:
    """Name the first position where two feature lists disagree, for an actionable error."""
    if len(expected) != len(got):
        return f"expected {len(expected)} features, got {len(got)}"
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if want != have:
            return f"feature {i} should be {want!r}, got {have!r}"
    return "feature lists are equal"
