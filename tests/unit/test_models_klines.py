"""Klines to a walk-forward-evaluated model: real BTCUSDT and ETHUSDT minutes, April–May 2021."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

from trading_assets.lib.features import (
    FeatureConfig,
    bars_from_klines,
    compute_features,
    compute_labels,
    label_names,
)
from trading_assets.lib.features.klines import kline_model_features
from trading_assets.lib.models import (
    DEFAULT_PARAMS,
    TrainedModel,
    beats_baselines,
    train_full,
    train_incremental,
    walk_forward,
)

FILES = {
    "BINANCE:BTCUSDT": "BTCUSDT_1m_2021-04-02_2021-05-20.csv.gz",
    "BINANCE:ETHUSDT": "ETHUSDT_1m_2021-04-02_2021-05-20.csv.gz",
}
CONFIG = FeatureConfig(windows_s=(300, 900, 3600), label_horizon_s=300)
# Six-column klines carry no taker split: the price group's model inputs only (no vwap level).
FEATURES = kline_model_features(("open_time", "open", "high", "low", "close", "volume"), CONFIG)
LABEL = label_names(CONFIG)[0]
TREES = 30
# One thread: the tests share two cores with other jobs, where OpenMP threads wait on each other.
PARAMS = DEFAULT_PARAMS | {"nthread": 1}
FOLDS = 4


def klines_frame(shared_data: Path) -> pl.DataFrame:
    """A training frame (instrument, event_timestamp, features, label, label_end) of the klines."""
    spot = shared_data / "binance" / "klines" / "spot"
    bars = pl.concat(
        [bars_from_klines(pl.read_csv(spot / name), ident) for ident, name in FILES.items()]
    )
    features = compute_features(bars, CONFIG, ("price",))
    labels = compute_labels(bars, CONFIG).select("instrument", "event_timestamp", LABEL)
    return (
        features.join(labels, on=["instrument", "event_timestamp"])
        .filter(pl.col(LABEL).is_not_null())
        .with_columns(label_end=pl.col("event_timestamp") + dt.timedelta(seconds=300))
    )


@pytest.fixture(scope="module")
def frame(shared_data: Path) -> pl.DataFrame:
    return klines_frame(shared_data)


@pytest.fixture(scope="module")
def model(frame: pl.DataFrame) -> TrainedModel:
    """The full model and its walk-forward report on the real labels."""
    return train_full(frame, FEATURES, LABEL, PARAMS, n_trees=TREES, n_folds=FOLDS)


def test_klines_train_a_model_with_a_finite_walk_forward_report_against_baselines(frame, model):
    # Assert: the pipeline ran end to end (act in the fixture)
    report = model.report
    assert report is not None and len(report.folds) == FOLDS
    for fold in report.folds:
        assert fold.train_rows > 0 and fold.test_rows > 10_000
    scores = report.pooled.as_dict()
    assert math.isnan(scores.pop("buy_hold_rmse"))  # holding long forecasts no return
    assert all(math.isfinite(v) for v in scores.values())
    assert report.pooled.rows == sum(f.test_rows for f in report.folds)
    assert report.pooled.pnl_rows == pytest.approx(report.pooled.rows / 5, rel=0.01)
    assert model.feature_names == tuple(FEATURES) and model.trees == TREES
    assert model.training_rows == frame.height
    assert model.time_start < model.time_end
    assert set(model.importance_gain) == set(FEATURES) and max(model.importance_gain.values()) > 0
    # Naive baselines on real minutes: the last return's IC is negative (short-term reversal),
    # and the zero forecast never trades.
    assert report.pooled.last.ic < 0 and report.pooled.zero.trades == 0
    assert beats_baselines(report.pooled, ic_margin=0.0, pnl_margin=None)


def test_incremental_model_is_the_full_model_plus_a_bounded_number_of_trees(frame, model):
    # Arrange: the newest day of rows
    cutoff = model.time_end - dt.timedelta(days=1)
    newest = frame.filter(pl.col("event_timestamp") > cutoff)

    # Act
    updated = train_incremental(model, newest, max_new_trees=5)

    # Assert
    assert (updated.kind, updated.trees, updated.full_trees) == ("incremental", TREES + 5, TREES)
    assert model.trees == TREES  # the full model is left as it was, ready for the next reset
    assert updated.training_rows == newest.height and updated.time_start > cutoff
    # It carries its full model's evaluation and data start: a version is audited by one file.
    assert updated.report == model.report and updated.data_start == model.time_start
    # The added trees fit the newest day: their in-sample error there drops below the full model's.
    x = xgb.DMatrix(newest.select(FEATURES).to_numpy(), feature_names=FEATURES)
    y = newest[LABEL].to_numpy()
    full_mse = float(np.mean((model.booster.predict(x) - y) ** 2))
    assert float(np.mean((updated.booster.predict(x) - y) ** 2)) < full_mse
    with pytest.raises(ValueError, match="full model"):
        train_incremental(updated, newest, max_new_trees=5)


def test_shuffled_training_labels_leave_no_out_of_sample_information(frame, model):
    # Arrange: IC on the real labels, from the full model's walk-forward report
    assert model.report is not None
    real_ic = model.report.pooled.model.ic

    # Act: the same evaluation with each fold's training labels permuted, for three seeds
    shuffled = [
        walk_forward(
            frame, FEATURES, LABEL, PARAMS, n_trees=TREES, n_folds=FOLDS, shuffle_seed=seed
        ).pooled
        for seed in (11, 12, 13)
    ]

    # Assert: ~112k pooled test rows give an iid standard error of 1/sqrt(n) ≈ 0.003, but labels
    # overlap five rows and features are smooth (1 h windows), so the effective sample is far
    # smaller: shuffled ICs spread by about 0.01 across seeds. Hence |IC| < 0.02 per seed and
    # < 0.01 for the mean of three, while the real model's IC stays above every shuffled one.
    ics = [report.model.ic for report in shuffled]
    assert all(report.rows > 100_000 for report in shuffled)
    assert all(abs(ic) < 0.02 for ic in ics)
    assert abs(sum(ics) / len(ics)) < 0.01
    assert real_ic > max(abs(ic) for ic in ics)
