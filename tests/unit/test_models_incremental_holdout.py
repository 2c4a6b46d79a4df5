"""The incremental recipe is scored on held-out newest rows before its trees are served, and the
gate tells trees that hurt there from a holdout that ranked harmless trees worse by chance."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from scipy.signal import lfilter

from trading_assets.lib import storage
from trading_assets.lib.models import DEFAULT_PARAMS, TrainedModel, train_full, train_incremental
from trading_assets.lib.models import artifacts as files
from trading_assets.lib.models.evaluation import design_matrix, predict, prepare
from trading_assets.lib.models.metrics import information_coefficient
from trading_assets.lib.models.training import HOLDOUT_FRACTION, new_trees_hold_up

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
HORIZON = dt.timedelta(seconds=60)
FEATURES = ["x0", "x1", "x2"]
LABEL = "ret"
PARAMS = DEFAULT_PARAMS | {"nthread": 1}
ROWS = 3_000
TOLERANCE = 0.05  # the gate's default IC tolerance for the new trees
# The newest rows as recent_training_rows leaves them: two instruments, one row a second for two
# hours, 60 s labels (neighbours share 59 s of their forward return).
INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
HOUR_S = 3_600
EDGE = 0.0004  # forward-return drift per unit of x0 (its IC is about 0.2 out of sample)
STEP_SD = 0.0002  # one 1 s log return
MEMORY_S = 120.0  # the features' memory: windowed features change slowly from second to second


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


def windowed(rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Unit-variance noise with a ``MEMORY_S`` memory (an AR(1) process), past its warm-up."""
    keep = np.exp(-1.0 / MEMORY_S)
    noise = rng.normal(size=seconds + 600)
    return np.asarray(lfilter([np.sqrt(1.0 - keep * keep)], [1.0, -keep], noise))[600:]


def noisy_market(seed: int, first_s: int, seconds: int, edge: np.ndarray | None = None):
    """Both instruments, one row a second: the 60 s forward return sums sixty 1 s returns that
    drift by ``edge · x0`` (``EDGE`` unless ``edge`` gives one per second) plus noise."""
    rng = np.random.default_rng(seed)
    steps_n = seconds + int(HORIZON.total_seconds())
    drift = np.full(steps_n, EDGE) if edge is None else np.resize(edge, steps_n)
    drift[seconds:] = drift[seconds - 1]
    times = [START + dt.timedelta(seconds=first_s + i) for i in range(seconds)]
    parts = []
    for instrument in INSTRUMENTS:
        x = np.column_stack([windowed(rng, steps_n) for _ in FEATURES])
        steps = drift * x[:, 0] / HORIZON.total_seconds() + rng.normal(scale=STEP_SD, size=steps_n)
        path = np.concatenate([[0.0], np.cumsum(steps)])
        forward = path[1 + steps_n - seconds : steps_n + 1] - path[1 : seconds + 1]
        parts.append(
            pl.DataFrame({name: x[:seconds, i] for i, name in enumerate(FEATURES)}).with_columns(
                pl.Series("instrument", [instrument] * seconds),
                pl.Series("event_timestamp", times),
                pl.Series(LABEL, forward),
                pl.Series("label_end", [t + HORIZON for t in times]),
            )
        )
    return pl.concat(parts).sort("event_timestamp", "instrument")


def ic_cost_on(rows: pl.DataFrame, full: TrainedModel, boosted: TrainedModel) -> float:
    """How much IC the boosted model's new trees cost on ``rows`` (negative: they gained)."""
    rows = prepare(rows, LABEL)
    x, realized = design_matrix(rows, FEATURES), rows[LABEL].to_numpy()
    return information_coefficient(
        predict(full.booster, x, FEATURES), realized
    ) - information_coefficient(predict(boosted.booster, x, FEATURES), realized)


@pytest.fixture(scope="module")
def market_model() -> TrainedModel:
    """A full model of the noisy market: six hours sampled every 10 s, as training_set does."""
    history = noisy_market(1, 0, 6 * HOUR_S).filter(pl.col("event_timestamp").dt.second() % 10 == 0)
    return train_full(history, FEATURES, LABEL, PARAMS, n_trees=30, n_folds=2)


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


def test_newest_rows_spanning_too_few_label_horizons_give_no_holdout(full_model):
    # Act: 300 s of rows hold 60 held-out rows, but they span about one label horizon
    model = train_incremental(full_model, tape(5, ROWS, ["x0"] * 300), max_new_trees=5)

    # Assert
    assert model.holdout is None


def updates_of_an_unchanged_market(base: TrainedModel) -> Iterator[TrainedModel]:
    """Incremental models on the newest two hours of independent draws of the same market."""
    for seed in range(2, 12):
        yield train_incremental(base, noisy_market(seed, 6 * HOUR_S, 2 * HOUR_S), max_new_trees=10)


def test_harmless_new_trees_are_not_refused_for_the_noise_of_a_short_holdout(market_model):
    # Arrange: the first update whose holdout ranked the new trees worse than the full model by
    # more than the tolerance, though the market did not change
    unlucky = next(
        (
            model
            for model in updates_of_an_unchanged_market(market_model)
            if model.holdout is not None
            and model.holdout.full.model.ic - model.holdout.incremental.model.ic > TOLERANCE
        ),
        None,
    )
    assert unlucky is not None, "no update of the unchanged market drew an unlucky holdout"
    holdout = unlucky.holdout
    assert holdout is not None

    # Act
    passed = new_trees_hold_up(holdout, TOLERANCE)

    # Assert: on four hours of fresh rows of the same market the served trees cost next to
    # nothing, and the gate passes them: the 24 held-out minutes (a few dozen label horizons)
    # measure their cost only to within a standard error as large as the tolerance itself
    assert abs(ic_cost_on(noisy_market(99, 9 * HOUR_S, 4 * HOUR_S), market_model, unlucky)) < 0.02
    assert passed
    assert holdout.ic_difference_se > TOLERANCE / 2


def test_new_trees_fitted_to_a_reversed_edge_are_refused_beyond_the_holdout_s_noise(market_model):
    # Arrange: the edge reversed during the rows the new trees were boosted on; the held-out
    # newest rows and the market after them follow it as before
    seconds = 2 * HOUR_S
    edge = np.full(seconds, 5 * EDGE)
    edge[: int(seconds * (1 - HOLDOUT_FRACTION))] = -5 * EDGE

    # Act
    model = train_incremental(
        market_model, noisy_market(20, 6 * HOUR_S, seconds, edge), max_new_trees=10
    )

    # Assert: the holdout shows a cost far beyond the tolerance and its noise, and the trees do
    # cost more than the tolerance on fresh rows of the market
    holdout = model.holdout
    assert holdout is not None
    assert holdout.ic_cost > TOLERANCE + 3 * holdout.ic_difference_se
    assert not new_trees_hold_up(holdout, TOLERANCE)
    assert ic_cost_on(noisy_market(99, 9 * HOUR_S, 4 * HOUR_S), market_model, model) > TOLERANCE


def test_a_holdout_whose_noise_was_not_recorded_fails_the_gate(full_model, tmp_path):
    # Arrange: a model file written before the holdout recorded its standard error
    model = train_incremental(full_model, tape(6, ROWS, ["x0"] * ROWS), max_new_trees=5)
    location = files.save_model(model, str(tmp_path / files.INCREMENTAL_FILE))
    document = json.loads(storage.read_bytes(location))
    del document["holdout"]["ic_difference_se"]
    files.write_atomic(location, json.dumps(document).encode())

    # Act
    loaded = files.load_model(location)

    # Assert: the same IC figures, with nothing to tell noise from harm: refused
    assert loaded.holdout is not None and model.holdout is not None
    assert loaded.holdout.ic_cost == model.holdout.ic_cost
    assert math.isnan(loaded.holdout.ic_difference_se)
    assert new_trees_hold_up(model.holdout, TOLERANCE)
    assert not new_trees_hold_up(loaded.holdout, TOLERANCE)
