"""Full and incremental training of the XGBoost forward-return regressor.

The full model is trained on the whole frame after a walk-forward evaluation of the same recipe.
The incremental model continues boosting from the current full model on the newest rows, adding at
most ``max_new_trees`` trees. It is always *full + at most K trees*: it must start from a full model
(never from another incremental one), so a day of incremental updates cannot pile up trees fitted to
ever-narrower recent windows; the next full training resets it.

Both recipes are scored before the served model is fitted on every row: the full one by purged,
embargoed walk-forward, the incremental one on a holdout of the newest rows it was not boosted on
(purged by the label horizon), where the full model alone and the full model plus the new trees
are compared with the baselines on the same rows.

The holdout is short (20 % of two hours: a few dozen label horizons), so the IC difference between
the two models on it is noisy: its standard error, from a bootstrap over one-horizon blocks, is
0.03–0.08 on the simulator's market. The gate therefore refuses the new trees only when their
IC cost exceeds the tolerance by more than ``NEW_TREES_Z`` standard errors, i.e. when the holdout
shows they hurt, not when it happened to rank them worse by chance.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import xgboost as xgb

from trading_assets.lib.features.definitions import check_model_features
from trading_assets.lib.models.evaluation import (
    DEFAULT_PARAMS,
    LABEL_END,
    LAST_RETURN,
    SYMBOL,
    TIME,
    WalkForwardReport,
    design_matrix,
    fit,
    horizon_blocks,
    horizon_of,
    pnl_rows,
    predict,
    prepare,
    spreads_of,
    walk_forward,
)
from trading_assets.lib.models.metrics import Comparison, compare, ic_difference_se

FULL: Literal["full"] = "full"
INCREMENTAL: Literal["incremental"] = "incremental"
HOLDOUT_FRACTION = 0.2  # newest share of the incremental rows held out to score the new trees
MIN_HOLDOUT_ROWS = 50  # fewer held-out rows say nothing; the report is then left out
MIN_HOLDOUT_HORIZONS = 5  # nor do fewer label horizons: too few blocks to gauge the noise
NEW_TREES_Z = 1.645  # one-sided 5 %: how sure the holdout must be that the new trees cost too much


@dataclass(frozen=True)
class HoldoutReport:
    """The newest rows the new trees were not boosted on, scored by the full model alone and by
    the full model plus the new trees, each next to the baselines."""

    start: dt.datetime  # first held-out time; boosting used only labels that ended before it
    full: Comparison
    incremental: Comparison
    # Standard error of incremental IC − full IC on these rows (bootstrap over one-horizon
    # blocks); NaN when unknown (a file written before it was recorded).
    ic_difference_se: float

    @property
    def ic_cost(self) -> float:
        """The IC the new trees cost on the held-out rows (negative: they gained)."""
        return self.full.model.ic - self.incremental.model.ic


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
    # Walk-forward evaluation of the full recipe: its own for a full model, and for an incremental
    # model the one of the full model it extends, so it travels with the model it describes.
    report: WalkForwardReport | None
    importance_gain: dict[str, float]
    holdout: HoldoutReport | None = None  # newest-rows evaluation (incremental models only)
    full_time_start: dt.datetime | None = None  # where the full model's data began (incremental)

    @property
    def data_start(self) -> dt.datetime:
        """The first market time any of the booster's trees was fitted on."""
        return self.full_time_start or self.time_start

    @property
    def trees(self) -> int:
        """Boosting rounds in the booster."""
        return self.booster.num_boosted_rounds()


def new_trees_hold_up(holdout: HoldoutReport | None, ic_tolerance: float | None) -> bool:
    """The incremental gate: on the held-out newest rows, the new trees do not cost more than
    ``ic_tolerance`` of the full model's IC beyond the holdout's noise (``NEW_TREES_Z`` standard
    errors of the IC difference). Passes when there is no holdout to judge or no tolerance is
    set (the full model's walk-forward gate still applies); fails when the noise is unknown."""
    if holdout is None or ic_tolerance is None:
        return True
    return holdout.ic_cost <= ic_tolerance + NEW_TREES_Z * holdout.ic_difference_se


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
    embargo: dt.timedelta | None = None,
) -> TrainedModel:
    """Walk-forward evaluation, then the model on every usable row. ``frame``: ``symbol``,
    ``event_timestamp``, the features, the label (forward log return) and ``label_end``.
    ``embargo`` defaults to one label horizon. Level features (display only) are refused."""
    started = time.perf_counter()
    names = tuple(feature_names)
    check_model_features(names)
    if embargo is None:
        embargo = horizon_of(_usable(frame, label))
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


def _boost(base: TrainedModel, rows: pl.DataFrame, n_trees: int) -> xgb.Booster:
    """A copy of the base booster with ``n_trees`` more trees fitted to ``rows``; the full model
    stays intact for the next reset."""
    y = rows[base.label].to_numpy().astype(np.float64)
    x = design_matrix(rows, base.feature_names)
    return fit(x, y, base.feature_names, base.params, n_trees, base=base.booster)


def evaluate_on_holdout(
    base: TrainedModel, rows: pl.DataFrame, max_new_trees: int, fraction: float = HOLDOUT_FRACTION
) -> HoldoutReport | None:
    """Boost on all but the newest ``fraction`` of the times (purged: only labels that ended
    before the holdout), then score the full model and the boosted one on the holdout, with the
    standard error of their IC difference. None when either side would be too small to say
    anything."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the holdout fraction must be in (0, 1), got {fraction}")
    ordered = prepare(rows, base.label)
    times = ordered[TIME].unique().sort()
    if times.len() < 2:
        return None
    start = times[min(int(times.len() * (1.0 - fraction)), times.len() - 1)]
    held = ordered.filter(pl.col(TIME) >= start)
    boost_rows = ordered.filter(pl.col(LABEL_END) < start)
    if held.height < MIN_HOLDOUT_ROWS or boost_rows.is_empty():
        return None
    horizon = horizon_of(held)
    blocks = horizon_blocks(held, horizon)
    if np.unique(blocks).size < MIN_HOLDOUT_HORIZONS:
        return None
    names = base.feature_names
    x = design_matrix(held, names)
    realized = held[base.label].to_numpy().astype(np.float64)
    last, symbols = held[LAST_RETURN].to_numpy(), held[SYMBOL].to_numpy()
    tradable, spread = pnl_rows(held, horizon), spreads_of(held)
    full = predict(base.booster, x, names)
    boosted = predict(_boost(base, boost_rows, max_new_trees), x, names)

    def score(predicted: npt.NDArray[np.float64]) -> Comparison:
        return compare(predicted, realized, last, symbols, tradable, spread_bps=spread)

    return HoldoutReport(
        start=start,
        full=score(full),
        incremental=score(boosted),
        ic_difference_se=ic_difference_se(full, boosted, realized, blocks),
    )


def train_incremental(
    base: TrainedModel, newest_rows: pl.DataFrame, max_new_trees: int
) -> TrainedModel:
    """The full model plus at most ``max_new_trees`` trees boosted on ``newest_rows``, with the
    recipe first scored on a holdout of the newest of those rows."""
    if base.kind != FULL:
        raise ValueError("incremental training starts from a full model, not an incremental one")
    if max_new_trees < 1:
        raise ValueError(f"max_new_trees must be at least 1, got {max_new_trees}")
    started = time.perf_counter()
    rows = _usable(newest_rows, base.label)
    if rows.is_empty():
        raise ValueError("no rows with a finite label to continue training on")
    holdout = evaluate_on_holdout(base, rows, max_new_trees)
    booster = _boost(base, rows, max_new_trees)
    start, end = _span(rows)
    return TrainedModel(
        booster=booster,
        feature_names=base.feature_names,
        label=base.label,
        params=dict(base.params),
        kind=INCREMENTAL,
        full_trees=base.full_trees,
        training_rows=rows.height,
        time_start=start,
        time_end=end,
        seconds=time.perf_counter() - started,
        report=base.report,
        importance_gain=_gain(booster, base.feature_names),
        holdout=holdout,
        full_time_start=base.time_start,
    )
