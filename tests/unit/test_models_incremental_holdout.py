"""The incremental recipe is scored on held-out newest rows before its trees are served."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from trading_assets.lib.models import DEFAULT_PARAMS, train_full, train_incremental
from trading_assets.lib.models.training import HOLDOUT_FRACTION, new_trees_hold_up

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
HORIZON = dt.timedelta(seconds=60)
FEATURES = ["x0", "x1", "x2"]
LABEL = "ret"
PARAMS = DEFAULT_PARAMS | {"nthread": 1}
ROWS = 3_000


def tape(seed: int, first_s: int, driver: list[str]) -> pl.DataFrame:
    """One instrument, one row a second; row i's return follows feature ``driver[i]`` plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(driver), len(FEATURES)))
    column = np.array([FEATURES.index(name) for name in driver])
    y = 0.002 * x[np.arange(len(driver)), column] + rng.normal(scale=0.0005, size=len(driver))
    times = [START + dt.timedelta(seconds=first_s + i) for i in range(len(driver))]
    return pl.DataFrame({name: x[:, i] for i, name in enumerate(FEATURES)}).with_columns(
        pl.Series("instrument", ["BINANCE:BTCUSDT"] * len(driver)),
        pl.Series("event_timestamp", times),
        pl.Series(LABEL, y),
        pl.Series("label_end", [t + HORIZON for t in times]),
    )


@pytest.fixture(scope="module")
def full_model():
    """A full model of a market whose return follows x0."""
    return train_full(tape(1, 0, ["x0"] * ROWS), FEATURES, LABEL, PARAMS, n_trees=30, n_folds=2)


def test_newest_rows_are_held_out_purged_and_scored_with_and_without_the_new_trees(full_model):
    # Arrange: the same market goes on
    newest = tape(2, ROWS, ["x0"] * ROWS)

    # Act
    model = train_incremental(full_model, newest, max_new_trees=10)

    # Assert
    holdout = model.holdout
    assert holdout is not None
    held = newest.filter(pl.col("event_timestamp") >= holdout.start)
    assert holdout.full.rows == holdout.incremental.rows == held.height
    assert held.height == pytest.approx(HOLDOUT_FRACTION * ROWS, abs=1)
    # The served model is boosted on every row; only its recipe was scored on the holdout.
    assert model.training_rows == ROWS and model.trees == full_model.trees + 10
    # Both scored the same rows next to the same baselines; the full model already knew x0.
    assert holdout.full.last == holdout.incremental.last
    assert holdout.full.model.ic > 0.8
    assert new_trees_hold_up(holdout, ic_tolerance=0.05)


def test_trees_fitted_to_a_passing_regime_fail_on_the_held_out_newest_rows(full_model):
    # Arrange: for a while the return follows x1, then it follows x0 again in the newest rows
    split = int(ROWS * (1 - HOLDOUT_FRACTION))
    newest = tape(3, ROWS, ["x1"] * split + ["x0"] * (ROWS - split))

    # Act
    model = train_incremental(full_model, newest, max_new_trees=10)

    # Assert: the new trees learned x1, which ranks the held-out rows worse than x0 alone
    holdout = model.holdout
    assert holdout is not None
    assert holdout.incremental.model.ic < holdout.full.model.ic - 0.05
    assert not new_trees_hold_up(holdout, ic_tolerance=0.05)
    assert new_trees_hold_up(holdout, ic_tolerance=None)  # a tolerance of None skips the test


def test_too_few_newest_rows_give_no_holdout_rather_than_a_noisy_one(full_model):
    # Act
    model = train_incremental(full_model, tape(4, ROWS, ["x0"] * 100), max_new_trees=5)

    # Assert
    assert model.holdout is None and model.training_rows == 100
    assert new_trees_hold_up(model.holdout, ic_tolerance=0.0)
