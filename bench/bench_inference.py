"""Single-row model inference, as the sidecar scores one symbol's vector per bar.

A realistically sized XGBoost regressor (31 features, 300 trees, depth 6) is trained on
synthetic data, exported to ONNX through the parity gate, then one row at a time is scored
p50 / p99 over many calls by ONNX Runtime through ``OnnxModel.predict_one`` (single-threaded
session) next to XGBoost's own paths in the same process: ``Booster.inplace_predict`` on a
1×31 array and ``Booster.predict`` on a freshly built ``DMatrix``. Both engines use one thread,
so the comparison is per-call latency, not parallelism. Target p99 ≤ 100 µs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import xgboost as xgb

from trading_assets.lib.models.inference import OnnxModel
from trading_assets.lib.models.onnx_export import export_onnx, parity

N_FEATURES = 31
TREES = 300
DEPTH = 6
TRAIN_ROWS = 10_000
CALLS = 20_000
DMATRIX_CALLS = 3_000  # building a DMatrix per call is slow; fewer calls keep the bench short
WARMUP = 500
TARGET_P99_US = 100.0


def percentiles_us(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of durations in seconds, in microseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e6, p99 * 1e6


def time_calls(call: Callable[[int], object], rows: int, calls: int) -> tuple[float, float]:
    """p50 / p99 (µs) of ``call(i)`` over ``calls`` rows after a warm-up; rows cycle."""
    for i in range(WARMUP):
        call(i % rows)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        call(i % rows)
        samples.append(time.perf_counter() - started)
    return percentiles_us(samples)


def train() -> tuple[xgb.Booster, list[str], np.ndarray]:
    """A booster of production size on a noisy non-linear synthetic target; returns test rows."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(TRAIN_ROWS + 1_000, N_FEATURES)).astype(np.float32)
    y = 0.3 * x[:, 0] - np.tanh(x[:, 1] * x[:, 2]) + 0.2 * np.sin(x[:, 3]) + rng.normal(size=len(x))
    names = [f"feature_{i:02d}" for i in range(N_FEATURES)]
    data = xgb.DMatrix(x[:TRAIN_ROWS], label=y[:TRAIN_ROWS], feature_names=names)
    params = {"objective": "reg:squarederror", "max_depth": DEPTH, "eta": 0.05, "seed": 7}
    booster = xgb.train(params, data, num_boost_round=TREES)
    return booster, names, x[TRAIN_ROWS:]


def main() -> None:
    booster, names, rows = train()
    onnx_bytes = export_onnx(booster, names)
    report = parity(booster, onnx_bytes, rows)
    model = OnnxModel(onnx_bytes, names)
    booster.set_param({"nthread": 1})
    n = len(rows)
    single = [np.ascontiguousarray(rows[i : i + 1]) for i in range(n)]

    cases: list[tuple[str, Callable[[int], object], int]] = [
        ("onnxruntime OnnxModel.predict_one", lambda i: model.predict_one(rows[i]), CALLS),
        (
            "xgboost Booster.inplace_predict (1 row)",
            lambda i: booster.inplace_predict(single[i]),
            CALLS,
        ),
        (
            "xgboost DMatrix + Booster.predict",
            lambda i: booster.predict(xgb.DMatrix(single[i], feature_names=names)),
            DMATRIX_CALLS,
        ),
    ]
    print(
        f"model: {N_FEATURES} features, {TREES} trees, depth {DEPTH}; "
        f"ONNX {len(onnx_bytes) / 1e6:.1f} MB; parity max |diff| {report.max_abs_diff:.2e} "
        f"over {report.rows} rows ({'pass' if report.passed else 'FAIL'})"
    )
    print(f"single-row calls, 1 thread; target p99 <= {TARGET_P99_US:.0f} µs\n")
    print(f"{'path':<42} {'calls':>7} {'p50 µs':>9} {'p99 µs':>9}  vs target")
    for label, call, calls in cases:
        p50, p99 = time_calls(call, n, calls)
        verdict = "meets" if p99 <= TARGET_P99_US else "misses"
        print(f"{label:<42} {calls:>7,} {p50:>9.1f} {p99:>9.1f}  {verdict}")


if __name__ == "__main__":
    main()
