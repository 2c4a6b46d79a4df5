"""Synthetic days through the project's chain to training rows, the oracle's forecast beside them,
and the walk-forward's out-of-sample predictions, for the tests and the benchmark of the edge.

Chain: the simulator's bulk file → bronze → silver (``lakehouse_days``) → 1 s bars → the batch
features of the trades-only groups and the forward-return labels, joined at the bar close as
Feast's point-in-time join would, one row per instrument every ``SAMPLE_EVERY_S`` seconds (as the
training set is assembled).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from streaming.simulator.synthetic import SyntheticMarket
from tests.lakehouse_days import bulk_silver_day
from trading_assets.lib.feature_store.training import labels_from_bars
from trading_assets.lib.features import (
    DEFAULT_CONFIG,
    TRADE_GROUPS,
    compute_features,
    label_names,
    model_feature_names,
)
from trading_assets.lib.instruments import parse_instrument
from trading_assets.lib.lakehouse.bars import bars_from_trades
from trading_assets.lib.models.evaluation import (
    DEFAULT_PARAMS,
    LABEL_END,
    TIME,
    design_matrix,
    fit,
    predict,
    prepare,
)
from trading_assets.lib.models.splits import purged_walk_forward

LABEL = label_names(DEFAULT_CONFIG)[0]
HORIZON_S = DEFAULT_CONFIG.label_horizon_s
FEATURES = model_feature_names(DEFAULT_CONFIG, TRADE_GROUPS)
SAMPLE_EVERY_S = 10
ORACLE = "oracle"
PREDICTED = "predicted"
EMBARGO = dt.timedelta(seconds=HORIZON_S)  # what full training uses: one label horizon
N_FOLDS, N_TREES = 4, 100  # the walk-forward's defaults
# The project's parameters on one thread: the machine's cores are shared, and a contended
# OpenMP pool is many times slower without changing a single split.
PARAMS: dict[str, Any] = {**DEFAULT_PARAMS, "nthread": 1}
US_PER_SECOND = 1_000_000

SilverOf = Callable[[SyntheticMarket, str, dt.date], pl.DataFrame]


def training_rows(
    market: SyntheticMarket,
    instruments: Sequence[str],
    days: Sequence[dt.date],
    silver_of: SilverOf = bulk_silver_day,
) -> pl.DataFrame:
    """Features, label, ``label_end`` and the oracle's forecast of each instrument
    (``BINANCE:BTCUSDT``) every ``SAMPLE_EVERY_S`` seconds of ``days`` (consecutive), from the
    silver rows ``silver_of`` gives."""
    parts = []
    for instrument in instruments:
        bars = pl.concat([bars_from_trades(silver_of(market, instrument, day)) for day in days])
        features = compute_features(bars, DEFAULT_CONFIG, TRADE_GROUPS, bar_s=1)
        rows = labels_from_bars(bars).join(features, on=["instrument", TIME], how="inner")
        every_us = SAMPLE_EVERY_S * US_PER_SECOND
        parts.append(rows.filter(pl.col(TIME).dt.epoch("us") % every_us == 0))
    return with_oracle(pl.concat(parts).sort(TIME, "instrument"), market)


def with_oracle(rows: pl.DataFrame, market: SyntheticMarket) -> pl.DataFrame:
    """``rows`` with the oracle's expected forward return over the label horizon at each time,
    read from the latent drift of the day that time closes (a time at midnight ends its day)."""
    times = rows[TIME].dt.epoch("us").to_numpy()
    instruments = rows["instrument"].to_numpy()
    days = (times - 1) // (86_400 * US_PER_SECOND)
    forecast = np.zeros(times.size)
    for instrument in np.unique(instruments):
        for day_number in np.unique(days[instruments == instrument]):
            mine = (instruments == instrument) & (days == day_number)
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))
            tape = market.tape(parse_instrument(str(instrument))[1], day)
            forecast[mine] = tape.expected_forward_return(times[mine], HORIZON_S)
    return rows.with_columns(pl.Series(ORACLE, forecast))


def out_of_sample(
    rows: pl.DataFrame, names: Sequence[str] = FEATURES, label: str = LABEL
) -> pl.DataFrame:
    """The rows the walk-forward tests, each with its fold's prediction (``PREDICTED``): the
    walk-forward's own recipe (``prepare``, purged and embargoed folds, ``fit``, ``predict``),
    keeping what its report pools away."""
    ordered = prepare(rows, label)
    x = design_matrix(ordered, names)
    y = ordered[label].to_numpy().astype(np.float64)
    folds = purged_walk_forward(
        ordered[TIME].to_numpy(), ordered[LABEL_END].to_numpy(), N_FOLDS, EMBARGO
    )
    tested, predicted = [], []
    for fold in folds:
        booster = fit(x[fold.train], y[fold.train], names, PARAMS, N_TREES)
        tested.append(fold.test)
        predicted.append(predict(booster, x[fold.test], names))
    return ordered[np.concatenate(tested)].with_columns(
        pl.Series(PREDICTED, np.concatenate(predicted))
    )


def linear_ic(forecast: npt.ArrayLike, realized: npt.ArrayLike) -> float:
    """Pearson correlation of forecast and realized return (0 for a constant forecast).

    The oracle's forecast is the conditional mean of the return given the latent drift, which
    no forecast built on less information can beat in correlation; its rank IC cannot serve as
    that bound, because it ties every quiet moment at exactly 0, a tie no model can reproduce.
    """
    f, r = np.asarray(forecast, np.float64), np.asarray(realized, np.float64)
    if f.std() == 0.0 or r.std() == 0.0:
        return 0.0
    return float(np.corrcoef(f, r)[0, 1])


def permutation_p_value(observed: float, controls: Iterable[float]) -> float:
    """Share of (controls + the observation) at least as large as the observation: the
    one-sided p-value of a permutation test."""
    values = np.asarray(list(controls), np.float64)
    return float((1 + np.sum(values >= observed)) / (1 + values.size))


def consecutive_days(first: dt.date, count: int) -> list[dt.date]:
    """``count`` days from ``first``."""
    return [first + dt.timedelta(days=i) for i in range(count)]
