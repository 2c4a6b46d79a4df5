"""The evaluation gate on real XGBoost walk-forward runs: a planted edge passes it, and a noise
model whose IC came out positive by luck on overlapping rows does not."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trading_assets.lib.models import DEFAULT_PARAMS, beats_baselines, walk_forward
from trading_assets.lib.models.evaluation import WalkForwardReport

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
STEP_S, HORIZON_STEPS = 10, 6  # 60 s labels sampled every 10 s: neighbours share 50 s
INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
ROWS = 4_000
FEATURES = ["x0", "x1", "x2"]
LABEL = "fwd_log_return_60s"
PARAMS = DEFAULT_PARAMS | {"nthread": 1, "min_child_weight": 50}
STEP_SD = 0.001  # one 10 s log return


def smooth(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Unit-variance noise averaged over one horizon, as windowed features are."""
    kernel = np.ones(HORIZON_STEPS) / np.sqrt(HORIZON_STEPS)
    return np.convolve(rng.normal(size=rows + HORIZON_STEPS - 1), kernel, "valid")


def market(seed: int, edge: float) -> pl.DataFrame:
    """Two instruments whose 60 s forward return is ``edge · x0`` plus the sum of six independent
    10 s returns (so overlapping labels share most of their noise)."""
    rng = np.random.default_rng(seed)
    parts = []
    for instrument in INSTRUMENTS:
        x = np.column_stack([smooth(rng, ROWS) for _ in FEATURES])
        steps = rng.normal(scale=STEP_SD, size=ROWS + HORIZON_STEPS)
        forward = np.convolve(steps, np.ones(HORIZON_STEPS), "valid")[1 : ROWS + 1]
        times = [START + dt.timedelta(seconds=STEP_S * i) for i in range(ROWS)]
        parts.append(
            pl.DataFrame({name: x[:, i] for i, name in enumerate(FEATURES)}).with_columns(
                pl.Series("instrument", [instrument] * ROWS),
                pl.Series("event_timestamp", times),
                pl.Series(LABEL, edge * x[:, 0] + forward),
                pl.Series("label_end", [t + dt.timedelta(seconds=60) for t in times]),
            )
        )
    return pl.concat(parts)


def evaluate(frame: pl.DataFrame) -> WalkForwardReport:
    embargo = dt.timedelta(seconds=60)
    return walk_forward(frame, FEATURES, LABEL, PARAMS, n_trees=20, n_folds=3, embargo=embargo)


def test_a_planted_edge_passes_every_test_of_the_gate():
    # Act: the forward return moves 30 bp per standard deviation of x0, past the 21 bp round trip
    pooled = evaluate(market(seed=1, edge=0.003)).pooled

    # Assert
    assert pooled.model.ic > 0.3 and pooled.model.ic_p_value < 1e-6
    assert pooled.model.pnl > pooled.best_baseline_pnl
    assert 0 < pooled.model.turnover < 2
    assert beats_baselines(pooled, ic_margin=0.0, pnl_margin=0.0)


def test_a_real_edge_that_does_not_pay_the_round_trip_is_refused_on_p_and_l():
    # Act: 10 bp per standard deviation of x0: a strong, significant ranking, but predictions
    # rarely reach the 21 bp round trip
    pooled = evaluate(market(seed=1, edge=0.001)).pooled

    # Assert: the IC tests pass; after costs it earns no more than doing nothing
    assert pooled.model.ic > 0.2 and pooled.model.ic_p_value < 1e-6
    assert beats_baselines(pooled, ic_margin=0.0, pnl_margin=None)
    assert pooled.model.pnl <= pooled.zero.pnl == 0.0
    assert not beats_baselines(pooled, ic_margin=0.0, pnl_margin=0.0)


def test_a_noise_model_positive_by_luck_is_refused_for_want_of_significance():
    # Arrange: the first noise market whose model beats the baselines' IC out of sample, as
    # half of them do by chance
    lucky = None
    for seed in range(10, 30):
        pooled = evaluate(market(seed, edge=0.0)).pooled
        if pooled.model.ic > pooled.best_baseline_ic:
            lucky = pooled
            break
    assert lucky is not None, "no noise market came out positive in 20 draws"

    # Act
    passes_on_ic_alone = beats_baselines(lucky, ic_margin=0.0, pnl_margin=None, max_ic_p_value=None)
    passes = beats_baselines(lucky, ic_margin=0.0, pnl_margin=None)

    # Assert: the IC alone let it through; on non-overlapping rows it means nothing
    assert passes_on_ic_alone
    assert lucky.model.ic_p_value > 0.01
    assert not passes
    assert lucky.pnl_rows == pytest.approx(lucky.rows / HORIZON_STEPS, rel=0.01)
