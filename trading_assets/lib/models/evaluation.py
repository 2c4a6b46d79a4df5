"""Walk-forward evaluation of the XGBoost return model on purged, embargoed folds.

Each fold trains a fresh model on its (purged) past and predicts its test block; the pooled
out-of-sample predictions of all folds are scored against the baselines (see ``metrics``). The
final model is never scored on data it saw. P&L uses one row per horizon per symbol (times that
are whole multiples of the horizon), so overlapping forward returns are not counted twice. Each
row's spread, which the trading rule pays half of per side, is the frame's ``spread_bps`` where it
has a usable one, else an assumed spread (history has no book; see ``policy``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import xgboost as xgb

from trading_assets.lib.models.metrics import Comparison, compare
from trading_assets.lib.models.policy import (
    ASSUMED_SPREAD_BPS,
    FEE_BP,
    SPREAD_FEATURE,
    known_spreads,
)
from trading_assets.lib.models.splits import purged_walk_forward

SYMBOL = "instrument"
TIME = "event_timestamp"
LABEL_END = "label_end"
LAST_RETURN = "_last_return"
PLOT_SAMPLE_ROWS = 2_000  # out-of-sample (predicted, realized) pairs kept for the plot

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    # Returns are mostly noise: large leaves keep trees from fitting single spikes.
    "min_child_weight": 200,
    "nthread": 2,
    "seed": 0,
}


@dataclass(frozen=True)
class FoldResult:
    """One fold's sizes, test span and out-of-sample scores."""

    number: int
    train_rows: int
    test_rows: int
    test_start: dt.datetime
    test_end: dt.datetime
    comparison: Comparison


@dataclass(frozen=True)
class WalkForwardReport:
    """Per-fold scores and the scores of all folds' out-of-sample predictions pooled."""

    folds: tuple[FoldResult, ...]
    pooled: Comparison
    fee_bp: float
    embargo_s: float = 0.0  # the gap between the last training label and each test fold
    # A seeded sample of the pooled out-of-sample (predicted, realized) pairs, for the plot.
    sample_predicted: tuple[float, ...] = ()
    sample_realized: tuple[float, ...] = ()


def horizon_of(frame: pl.DataFrame) -> dt.timedelta:
    """The label horizon, ``label_end − event_timestamp``, which must be the same on every row."""
    spans = frame.select((pl.col(LABEL_END) - pl.col(TIME)).unique()).to_series().to_list()
    if len(spans) != 1:
        raise ValueError(f"expected one label horizon, found {spans[:5]}")
    return spans[0]


def prepare(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    """Rows with a finite label, in time order, with the last-return baseline attached.

    The last return at t is the label of the same symbol's row whose label ended at t
    (log(close_t / close_{t−h})): known at t, so the baseline leaks nothing. Missing → 0.
    """
    usable = frame.filter(pl.col(label).is_not_null() & pl.col(label).is_finite())
    previous = usable.select(
        SYMBOL, pl.col(LABEL_END).alias(TIME), pl.col(label).alias(LAST_RETURN)
    )
    return (
        usable.join(previous, on=[SYMBOL, TIME], how="left")
        .with_columns(pl.col(LAST_RETURN).fill_null(0.0))
        .sort(TIME, SYMBOL)
    )


def design_matrix(frame: pl.DataFrame, feature_names: Sequence[str]) -> npt.NDArray[np.float64]:
    """Features in the given order as float64; nulls become NaN, XGBoost's missing value."""
    return frame.select(pl.col(list(feature_names)).cast(pl.Float64)).to_numpy().astype(np.float64)


def fit(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    feature_names: Sequence[str],
    params: Mapping[str, Any],
    n_trees: int,
    base: xgb.Booster | None = None,
) -> xgb.Booster:
    """A regression booster of ``n_trees`` rounds on (x, y), continuing from ``base`` if given
    (xgb.train copies it, so ``base`` itself is left intact)."""
    data = xgb.DMatrix(x, label=y, feature_names=list(feature_names))
    return xgb.train(dict(params), data, num_boost_round=n_trees, xgb_model=base)


def predict(booster: xgb.Booster, x: npt.NDArray[np.float64], feature_names: Sequence[str]):
    """Predictions as float64."""
    data = xgb.DMatrix(x, feature_names=list(feature_names))
    return np.asarray(booster.predict(data), np.float64)


def pnl_rows(frame: pl.DataFrame, horizon: dt.timedelta) -> npt.NDArray[np.bool_]:
    """Rows whose time is a whole multiple of the horizon: one trade per horizon, no overlap."""
    h_us = horizon // dt.timedelta(microseconds=1)
    return (frame.select(pl.col(TIME).dt.epoch("us") % h_us == 0).to_series().to_numpy()).astype(
        bool
    )


def horizon_blocks(frame: pl.DataFrame, horizon: dt.timedelta) -> npt.NDArray[np.int64]:
    """Each row's block of one horizon of time (whole multiples of the horizon start one), every
    symbol together: labels in one block overlap in time, and symbols move together."""
    h_us = horizon // dt.timedelta(microseconds=1)
    return frame.select(pl.col(TIME).dt.epoch("us") // h_us).to_series().to_numpy()


def spreads_of(
    frame: pl.DataFrame, assumed_bps: float = ASSUMED_SPREAD_BPS
) -> npt.NDArray[np.float64]:
    """Each row's spread in bp: its ``spread_bps`` when usable, else ``assumed_bps``."""
    if SPREAD_FEATURE not in frame.columns:
        return np.full(frame.height, assumed_bps)
    column = frame[SPREAD_FEATURE].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return known_spreads(column, assumed_bps)


def walk_forward(
    frame: pl.DataFrame,
    feature_names: Sequence[str],
    label: str,
    params: Mapping[str, Any] = DEFAULT_PARAMS,
    n_trees: int = 100,
    n_folds: int = 4,
    embargo: dt.timedelta = dt.timedelta(0),
    fee_bp: float = FEE_BP,
    shuffle_seed: int | None = None,
    assumed_spread_bps: float = ASSUMED_SPREAD_BPS,
) -> WalkForwardReport:
    """Train and score one model per fold, each on its purged, embargoed past (see ``splits``).
    ``shuffle_seed`` permutes each fold's training labels
    (a control: with the link between features and labels cut, out-of-sample IC must vanish).
    ``assumed_spread_bps``: the spread of rows without a usable ``spread_bps``."""
    rows = prepare(frame, label)
    horizon = horizon_of(rows)
    x = design_matrix(rows, feature_names)
    y = rows[label].to_numpy().astype(np.float64)
    last = rows[LAST_RETURN].to_numpy()
    symbols = rows[SYMBOL].to_numpy()
    tradable = pnl_rows(rows, horizon)
    spread = spreads_of(rows, assumed_spread_bps)
    folds = purged_walk_forward(rows[TIME].to_numpy(), rows[LABEL_END].to_numpy(), n_folds, embargo)
    results, tested, predictions = [], [], []
    for fold in folds:
        y_train = y[fold.train]
        if shuffle_seed is not None:
            y_train = np.random.default_rng(shuffle_seed + fold.number).permutation(y_train)
        booster = fit(x[fold.train], y_train, feature_names, params, n_trees)
        p = predict(booster, x[fold.test], feature_names)
        t = fold.test
        results.append(
            FoldResult(
                number=fold.number,
                train_rows=int(fold.train.size),
                test_rows=int(t.size),
                test_start=_utc(fold.test_start),
                test_end=_utc(fold.test_end),
                comparison=compare(p, y[t], last[t], symbols[t], tradable[t], fee_bp, spread[t]),
            )
        )
        tested.append(t)
        predictions.append(p)
    t, p = np.concatenate(tested), np.concatenate(predictions)
    pooled = compare(p, y[t], last[t], symbols[t], tradable[t], fee_bp, spread[t])
    keep = np.random.default_rng(0).permutation(t.size)[:PLOT_SAMPLE_ROWS]
    return WalkForwardReport(
        folds=tuple(results),
        pooled=pooled,
        fee_bp=fee_bp,
        embargo_s=embargo.total_seconds(),
        sample_predicted=tuple(float(v) for v in p[keep]),
        sample_realized=tuple(float(v) for v in y[t][keep]),
    )


def _utc(value: np.datetime64) -> dt.datetime:
    micros = int(value.astype("datetime64[us]").astype(np.int64))
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
