"""Full and incremental training of the XGBoost forward-return regressor.

The full model is trained on the whole frame after a walk-forward evaluation of the same recipe.
The incremental model continues boosting from the current full model on the newest rows, adding at
most ``max_new_trees`` trees. It is always *full + at most K trees*: it must start from a full model
(never from another incremental one), so a day of incremental updates cannot pile up trees fitted to
ever-narrower recent windows; the next full training resets it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
import xgboost as xgb

from trading_assets.lib.models.evaluation import (
    DEFAULT_PARAMS,
    TIME,
    WalkForwardReport,
    design_matrix,
    fit,
    walk_forward,
)

FULL: Literal["full"] = "full"
INCREMENTAL: Literal["incremental"] = "incremental"


@dataclass(frozen=True)
class TrainedModel:
    """A booster and what is needed to use and audit it."""

    booster: xgb.Booster
    feature_names: tuple[str, ...]  # the fixed input column order
    label: str
    params: dict[str, Any]
    kind: Literal["full", "incremental"]
    full_trees: int  # trees of the full model this one starts from (itself, when full)
    training_rows: int
    time_start: dt.datetime
    time_end: dt.datetime
    seconds: float
    report: WalkForwardReport | None  # walk-forward evaluation (full models only)
    importance_gain: dict[str, float]

    @property
    def trees(self) -> int:
        """Boosting rounds in the booster."""
        return self.booster.num_boosted_rounds()


def _gain(booster: xgb.Booster, feature_names: Sequence[str]) -> dict[str, float]:
    """Total gain per feature, 0 for features no split used, in feature order."""
    scores = booster.get_score(importance_type="total_gain")
    return {name: float(np.asarray(scores.get(name, 0.0)).sum()) for name in feature_names}


def _usable(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    return frame.filter(pl.col(label).is_not_null() & pl.col(label).is_finite())


def _span(frame: pl.DataFrame) -> tuple[dt.datetime, dt.datetime]:
    start, end = frame[TIME].min(), frame[TIME].max()
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        raise ValueError(f"{TIME} must be a datetime column")
    return start, end


def train_full(
    frame: pl.DataFrame,
    feature_names: Sequence[str],
    label: str,
    params: Mapping[str, Any] = DEFAULT_PARAMS,
    n_trees: int = 100,
    n_folds: int = 4,
    embargo: dt.timedelta = dt.timedelta(0),
) -> TrainedModel:
    """Walk-forward evaluation, then the model on every usable row. ``frame``: ``symbol``,
    ``event_timestamp``, the features, the label (forward log return) and ``label_end``."""
    started = time.perf_counter()
    names = tuple(feature_names)
    report = walk_forward(frame, names, label, params, n_trees, n_folds, embargo)
    rows = _usable(frame, label)
    y = rows[label].to_numpy().astype(np.float64)
    booster = fit(design_matrix(rows, names), y, names, params, n_trees)
    start, end = _span(rows)
    return TrainedModel(
        booster=booster,
        feature_names=names,
        label=label,
        params=dict(params),
        kind=FULL,
        full_trees=booster.num_boosted_rounds(),
        training_rows=rows.height,
        time_start=start,
        time_end=end,
        seconds=time.perf_counter() - started,
        report=report,
        importance_gain=_gain(booster, names),
    )


def train_incremental(
    base: TrainedModel, newest_rows: pl.DataFrame, max_new_trees: int
) -> TrainedModel:
    """The full model plus at most ``max_new_trees`` trees boosted on ``newest_rows``."""
    if base.kind != FULL:
        raise ValueError("incremental training starts from a full model, not an incremental one")
    if max_new_trees < 1:
        raise ValueError(f"max_new_trees must be at least 1, got {max_new_trees}")
    started = time.perf_counter()
    rows = _usable(newest_rows, base.label)
    if rows.is_empty():
        raise ValueError("no rows with a finite label to continue training on")
    names = base.feature_names
    data = xgb.DMatrix(
        design_matrix(rows, names),
        label=rows[base.label].to_numpy().astype(np.float64),
        feature_names=list(names),
    )
    # xgb.train copies the base booster, so the full model stays intact for the next reset.
    booster = xgb.train(
        dict(base.params), data, num_boost_round=max_new_trees, xgb_model=base.booster
    )
    start, end = _span(rows)
    return TrainedModel(
        booster=booster,
        feature_names=names,
        label=base.label,
        params=dict(base.params),
        kind=INCREMENTAL,
        full_trees=base.full_trees,
        training_rows=rows.height,
        time_start=start,
        time_end=end,
        seconds=time.perf_counter() - started,
        report=None,
        importance_gain=_gain(booster, names),
    )
