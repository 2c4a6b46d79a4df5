"""A permutation test for two time series whose values overlap from one step to the next."""

from __future__ import annotations

import numpy as np


def circular_shift_test(
    x: np.ndarray, y: np.ndarray, min_lag: int, rounds: int = 999
) -> tuple[float, float]:
    """Correlation of x and y and its two-sided p-value against y rotated by random lags of at
    least ``min_lag``: each rotation keeps both series' own autocorrelation (windows overlap
    from one second to the next) and breaks only their alignment."""
    r = float(np.corrcoef(x, y)[0, 1])
    rng = np.random.default_rng(2024)
    lags = rng.integers(min_lag, len(y) - min_lag, rounds)
    null = np.array([np.corrcoef(x, np.roll(y, int(lag)))[0, 1] for lag in lags])
    return r, (1 + int(np.sum(np.abs(null) >= abs(r)))) / (1 + rounds)
