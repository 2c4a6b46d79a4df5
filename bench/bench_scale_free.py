"""Out-of-sample IC of the klines price model with and without the level features (``vwap_{w}s``).

Real Binance spot 1 m klines of BTCUSDT and ETHUSDT (``../shared/data/binance/klines/spot``; six
columns, so the price group only), features and labels as the klines model computes them (windows
5 min, 15 min and 1 h; a 5 min forward log return). One model is trained on both symbols and
scored on later minutes it never saw, once reading the old inputs (the price group, levels
included) and once its model inputs (``kline_model_features``: no levels):

* across regimes: trained on 2020-05-21..2020-06-20, tested on 2021-04-02..2021-05-20, when
  BTCUSDT traded 3 to 6 times higher and ETHUSDT 8 to 20 times higher;
* within each period: trained on its earlier half, tested on its later half (training rows whose
  label ends after the cut are purged).

IC is the Spearman rank correlation of prediction and realized return on the test rows (pooled,
then per symbol); "level gain" is the share of the with-levels model's total gain on level
features. Nothing here is timed or asserted: the table is what the data says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bench.harness import REPO_ROOT
from trading_assets.lib.features import (
    FeatureConfig,
    bars_from_klines,
    compute_features,
    compute_labels,
    feature_names,
    is_level_feature,
    kline_groups,
    label_names,
)
from trading_assets.lib.features.klines import kline_model_features

SPOT = REPO_ROOT.parent / "shared" / "data" / "binance" / "klines" / "spot"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
PERIODS = {"2020": "2020-05-21_2020-06-20", "2021": "2021-04-02_2021-05-20"}
KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
CONFIG = FeatureConfig(windows_s=(300, 900, 3600), label_horizon_s=300)
LABEL = label_names(CONFIG)[0]
TREES = 100  # the full model's default
THREADS = 2
POOLED = "pooled"


def level_inputs() -> list[str]:
    """What the klines price model read before: every feature of its groups, levels included."""
    return feature_names(CONFIG, kline_groups(KLINE_COLUMNS))


def model_inputs() -> list[str]:
    """What it reads now: the model inputs of its groups (no levels)."""
    return kline_model_features(KLINE_COLUMNS, CONFIG)


def period_frame(spot: Path, period: str) -> pl.DataFrame:
    """Both symbols' features, label and label end for one period's klines."""
    frames = []
    for symbol in SYMBOLS:
        klines = pl.read_csv(spot / f"{symbol}_1m_{PERIODS[period]}.csv.gz")
        bars = bars_from_klines(klines, symbol)
        features = compute_features(bars, CONFIG, kline_groups(klines.columns))
        labels = compute_labels(bars, CONFIG).select("instrument", "event_timestamp", LABEL)
        frames.append(features.join(labels, on=["instrument", "event_timestamp"]))
    horizon = dt.timedelta(seconds=CONFIG.label_horizon_s)
    return (
        pl.concat(frames)
        .filter(pl.col(LABEL).is_not_null() & pl.col(LABEL).is_finite())
        .with_columns(label_end=pl.col("event_timestamp") + horizon)
        .sort("event_timestamp", "instrument")
    )


def split_in_time(frame: pl.DataFrame, share: float = 0.5) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows before the time that leaves ``share`` of them behind, and rows from it on; training
    rows whose label ends after that time are purged (their label overlaps the test)."""
    times = frame["event_timestamp"].sort()
    cut = times[int(times.len() * share)]
    train = frame.filter(pl.col("label_end") <= cut)
    return train, frame.filter(pl.col("event_timestamp") >= cut)


@dataclass(frozen=True)
class OutOfSample:
    """One model's scores on rows it never saw."""

    train_rows: int
    test_rows: int
    ic: dict[str, float]  # pooled, then per symbol
    level_gain: float  # share of the model's total gain on level features


def out_of_sample(
    train: pl.DataFrame,
    test: pl.DataFrame,
    names: Sequence[str],
    trees: int = TREES,
    threads: int = THREADS,
) -> OutOfSample:
    """Fit on ``train`` (the full model's parameters), score on ``test``."""
    from trading_assets.lib.models import DEFAULT_PARAMS, information_coefficient
    from trading_assets.lib.models.evaluation import design_matrix, fit, predict

    params = DEFAULT_PARAMS | {"nthread": threads}
    y = train[LABEL].to_numpy().astype(np.float64)
    booster = fit(design_matrix(train, names), y, names, params, trees)
    predicted = predict(booster, design_matrix(test, names), names)
    realized = test[LABEL].to_numpy()
    symbols = test["instrument"].to_numpy()
    ic = {POOLED: information_coefficient(predicted, realized)}
    for symbol in SYMBOLS:
        rows = symbols == symbol
        ic[symbol] = information_coefficient(predicted[rows], realized[rows])
    scores = booster.get_score(importance_type="total_gain")
    gain = {name: float(np.asarray(value).sum()) for name, value in scores.items()}
    total = sum(gain.values())
    levels = sum(v for k, v in gain.items() if is_level_feature(k))
    return OutOfSample(train.height, test.height, ic, levels / total if total else 0.0)


@dataclass(frozen=True)
class Comparison:
    """The same split scored with the old inputs and with the model inputs."""

    split: str
    with_levels: OutOfSample
    without_levels: OutOfSample


def compare_inputs(spot: Path = SPOT) -> list[Comparison]:
    """Across regimes, then within each period (earlier half → later half)."""
    frames = {period: period_frame(spot, period) for period in PERIODS}
    splits = {"2020 → 2021": (frames["2020"], frames["2021"])}
    for period, frame in frames.items():
        splits[f"{period} 1st half → 2nd half"] = split_in_time(frame)
    return [
        Comparison(
            split,
            out_of_sample(train, test, level_inputs()),
            out_of_sample(train, test, model_inputs()),
        )
        for split, (train, test) in splits.items()
    ]


def main() -> None:
    if not SPOT.is_dir():
        print(f"skipped: real klines not found at {SPOT} (../shared/data is absent)")
        return
    comparisons = compare_inputs()
    print(f"old inputs ({len(level_inputs())}): {', '.join(level_inputs())}")
    print(f"model inputs ({len(model_inputs())}): {', '.join(model_inputs())}")
    print(f"{TREES} trees, {LABEL}, one model on {' + '.join(SYMBOLS)}; IC = Spearman, test rows")
    header = f"{'train → test':<26}{'scored on':<10}{'test rows':>10}"
    print(f"{header}{'IC with levels':>16}{'IC without':>12}")
    for comparison in comparisons:
        for scope in (POOLED, *SYMBOLS):
            old, new = comparison.with_levels, comparison.without_levels
            rows = new.test_rows if scope == POOLED else ""
            label = comparison.split if scope == POOLED else ""
            print(f"{label:<26}{scope:<10}{rows:>10}{old.ic[scope]:>16.4f}{new.ic[scope]:>12.4f}")
        print(
            f"{'':<26}{'level gain share of the with-levels model:':<46}"
            f"{comparison.with_levels.level_gain:>10.1%}"
        )


if __name__ == "__main__":
    main()
