"""The cost-aware trading rule on real klines: walk-forward scores next to the baselines.

Real Binance spot 1 m klines of BTCUSDT and ETHUSDT (``../shared/data/binance/klines/spot``; six
columns, so the price group's model inputs only, ``kline_model_features``), two periods
(2020-05-21..2020-06-20 and 2021-04-02..2021-05-20), each evaluated on its own: 4 purged
walk-forward folds embargoed by one horizon, XGBoost with the full model's defaults, for a 60 s
label (the served horizon) and a 5 min one. Features: windows of 1, 5, 15 and 60 min.

Scores (see ``trading_assets.lib.models.metrics``): IC on every row; its one-sided p-value on the
non-overlapping rows (one per horizon per symbol); hit rate; the trading rule's P&L after costs
(10 bp fee per side plus half the assumed 1 bp spread: klines carry no book), summed log
returns in percent; sides traded and turnover (sides per non-overlapping row). The permutation
p-value compares the model's out-of-sample IC with that of the same walk-forward trained on
shuffled labels (``shuffle_seed``), ``(1 + #{shuffled IC ≥ IC}) / (1 + seeds)``; the shuffled
ICs' mean and spread are shown too, since few seeds bound the p-value from below. "gate": what
the evaluation gate would say (IC and P&L margins 0, IC p-value at most 0.01).
``BENCH_KLINES_SEEDS`` sets the number of shuffled runs (19 by default). Nothing is timed or
asserted: the table is what the data says.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from dataclasses import dataclass

import polars as pl

from bench.harness import REPO_ROOT
from trading_assets.lib.features import (
    FeatureConfig,
    bars_from_klines,
    compute_features,
    compute_labels,
    kline_groups,
    label_names,
)
from trading_assets.lib.features.klines import kline_model_features
from trading_assets.lib.models import DEFAULT_PARAMS, beats_baselines, walk_forward
from trading_assets.lib.models.metrics import Comparison, Metrics
from trading_assets.lib.models.policy import ASSUMED_SPREAD_BPS, FEE_BP, round_trip_cost

SPOT = REPO_ROOT.parent / "shared" / "data" / "binance" / "klines" / "spot"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
PERIODS = {"2020": "2020-05-21_2020-06-20", "2021": "2021-04-02_2021-05-20"}
KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
WINDOWS_S = (60, 300, 900, 3600)
HORIZONS_S = (60, 300)
TREES, FOLDS = 100, 4
PARAMS = DEFAULT_PARAMS | {"nthread": 1}  # the machine's other core stays free for others
SEEDS = int(os.environ.get("BENCH_KLINES_SEEDS", "19"))
FORECASTS = {"model": "model", "zero": "zero", "last": "last return", "buy_hold": "buy & hold"}


@dataclass(frozen=True)
class Run:
    """One period and horizon: the pooled comparison and the shuffled-label ICs."""

    period: str
    horizon_s: int
    pooled: Comparison
    shuffled_ics: tuple[float, ...]
    seconds: float

    @property
    def permutation_p(self) -> float:
        beaten = sum(ic >= self.pooled.model.ic for ic in self.shuffled_ics)
        return (1 + beaten) / (1 + len(self.shuffled_ics))


def period_frame(period: str, config: FeatureConfig) -> pl.DataFrame:
    """Both symbols' features, label and label end for one period's klines."""
    label = label_names(config)[0]
    frames = []
    for symbol in SYMBOLS:
        klines = pl.read_csv(SPOT / f"{symbol}_1m_{PERIODS[period]}.csv.gz")
        bars = bars_from_klines(klines, symbol)
        features = compute_features(bars, config, kline_groups(klines.columns))
        labels = compute_labels(bars, config).select("instrument", "event_timestamp", label)
        frames.append(features.join(labels, on=["instrument", "event_timestamp"]))
    horizon = dt.timedelta(seconds=config.label_horizon_s)
    return (
        pl.concat(frames)
        .filter(pl.col(label).is_not_null() & pl.col(label).is_finite())
        .with_columns(label_end=pl.col("event_timestamp") + horizon)
        .sort("event_timestamp", "instrument")
    )


def evaluate(period: str, horizon_s: int) -> Run:
    """The walk-forward on the real labels, then on shuffled ones for ``SEEDS`` seeds."""
    started = time.perf_counter()
    config = FeatureConfig(windows_s=WINDOWS_S, label_horizon_s=horizon_s)
    frame = period_frame(period, config)
    names = kline_model_features(KLINE_COLUMNS, config)
    label = label_names(config)[0]
    embargo = dt.timedelta(seconds=horizon_s)

    def run(seed: int | None) -> Comparison:
        report = walk_forward(frame, names, label, PARAMS, TREES, FOLDS, embargo, shuffle_seed=seed)
        return report.pooled

    pooled = run(None)
    shuffled = tuple(run(1_000 + seed).model.ic for seed in range(SEEDS))
    return Run(period, horizon_s, pooled, shuffled, time.perf_counter() - started)


def forecast_row(run: Run, name: str, metrics: Metrics) -> str:
    model = name == "model"
    permutation = f"{run.permutation_p:.3f}" if model else ""
    shuffled = ""
    if model and len(run.shuffled_ics) > 1:
        mean, sd = statistics.fmean(run.shuffled_ics), statistics.stdev(run.shuffled_ics)
        shuffled = f"{mean:+.4f} ± {sd:.4f}"
    gate = ("pass" if beats_baselines(run.pooled) else "fail") if model else ""
    return (
        f"| {run.period} | {run.horizon_s} s | {FORECASTS[name]} | {metrics.ic:+.4f} | "
        f"{metrics.ic_p_value:.2g} | {permutation} | {shuffled} | {metrics.hit_rate:.4f} | "
        f"{100 * metrics.pnl:+.2f} | {metrics.trades} | {metrics.turnover:.4f} | {gate} |"
    )


def table(runs: list[Run]) -> str:
    lines = [
        "| period | horizon | forecast | IC | IC p (non-overlapping) | permutation p | "
        "shuffled IC | hit rate | P&L after costs (%) | sides | turnover | gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for name in FORECASTS:
            lines.append(forecast_row(run, name, getattr(run.pooled, name)))
    return "\n".join(lines)


def main() -> None:
    if not SPOT.is_dir():
        print(f"skipped: real klines not found at {SPOT} (../shared/data is absent)")
        return
    trip = round_trip_cost(ASSUMED_SPREAD_BPS, FEE_BP) * 1e4
    print(
        f"Klines BTCUSDT + ETHUSDT, {FOLDS} purged walk-forward folds, {TREES} trees, "
        f"{SEEDS} shuffled-label runs per line; fee {FEE_BP:g} bp per side, assumed spread "
        f"{ASSUMED_SPREAD_BPS:g} bp: trades only where |predicted| > {trip:g} bp."
    )
    runs = []
    for period in PERIODS:
        for horizon_s in HORIZONS_S:
            runs.append(evaluate(period, horizon_s))
            done = runs[-1]
            rows = done.pooled.rows
            print(f"  {period}, {horizon_s} s: {rows} rows, {done.seconds:.0f} s", flush=True)
    print()
    print(table(runs))


if __name__ == "__main__":
    main()
