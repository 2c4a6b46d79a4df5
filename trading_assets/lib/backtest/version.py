"""A registered model version's backtest: the rows that came after its training data, scored by
its own ONNX model, traded by the served decision path, filled on the lakehouse's market data.

A version is trained on data up to its ``data_end``; the rows after it are the walk-forward test
period it would have served, and nothing in them was seen in training. The rows come from the
training frame of the version's feature service (point-in-time features from Feast's offline
store, rebuilt every 6 hours) and its newest rows (the incremental model's, every 5 minutes, one
a second), where those hold every feature the version reads; their predictions from the
version's ONNX bytes through onnxruntime, as the sidecar scores them. Fills walk the silver book
where one was captured, else pay half an assumed spread over the 1 s bars' closes (book tickers
are not in the lakehouse).

The baselines are the gate's: zero (no trades), the last return (the label that ended at the
decision), and buy-and-hold, run through the same fills.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from trading_assets.lib.backtest.market import NS, BarTape, BookTape, MarketTape
from trading_assets.lib.backtest.paper import PaperConfig
from trading_assets.lib.backtest.replay import BacktestResult, buy_and_hold, run_backtest
from trading_assets.lib.backtest.report import BacktestSummary, pnl_per_day, summarize
from trading_assets.lib.book.lakehouse import read_silver_book
from trading_assets.lib.book.rebuild import LevelDiff, LevelSnapshot
from trading_assets.lib.feature_store.spec import ENTITY, TIMESTAMP_FIELD
from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import read_partition
from trading_assets.lib.models.inference import OnnxModel
from trading_assets.lib.models.policy import SPREAD_FEATURE, signal_scale_of
from trading_assets.lib.models.registry import LoadedModel

LABEL_END = "label_end"
LAST_RETURN = "last_return"
VOLATILITY = "rv_60s"


@dataclass(frozen=True)
class VersionBacktest:
    """One version's backtest over its unseen rows, with the baselines on the same rows."""

    version: str
    rows: int
    start: dt.datetime | None
    end: dt.datetime | None
    result: BacktestResult
    summary: BacktestSummary
    baselines: dict[str, BacktestSummary]
    baseline_results: dict[str, BacktestResult]

    def days(self) -> pl.DataFrame:
        """P&L per UTC day."""
        return pnl_per_day(self.result)


def newest_rows(frames: list[pl.DataFrame], feature_names: list[str]) -> pl.DataFrame:
    """The frames as one, the later frame's row winning where two hold the same instrument and
    time; a frame that lacks one of ``feature_names`` is left out (its rows would score with a
    missing input)."""
    usable = [f for f in frames if not set(feature_names) - set(f.columns)] or frames[:1]
    return (
        pl.concat(usable, how="diagonal_relaxed")
        .unique([ENTITY, TIMESTAMP_FIELD], keep="last", maintain_order=True)
        .sort(TIMESTAMP_FIELD, ENTITY)
    )


def unseen_rows(frame: pl.DataFrame, data_end: dt.datetime, label: str) -> pl.DataFrame:
    """The rows after ``data_end`` in time order, with the last-return baseline attached: the
    label of the same instrument's row whose label ended at the row's time (0 when none)."""
    previous = frame.filter(pl.col(label).is_finite()).select(
        ENTITY, pl.col(LABEL_END).alias(TIMESTAMP_FIELD), pl.col(label).alias(LAST_RETURN)
    )
    unseen = frame.filter(pl.col(TIMESTAMP_FIELD) > data_end)
    return (
        unseen.join(previous, on=[ENTITY, TIMESTAMP_FIELD], how="left")
        .with_columns(pl.col(LAST_RETURN).fill_null(0.0))
        .sort(TIMESTAMP_FIELD, ENTITY)
    )


def predicted_returns(model: LoadedModel, rows: pl.DataFrame) -> np.ndarray:
    """The version's ONNX predictions of ``rows`` (its features in its order; null → NaN)."""
    missing = [name for name in model.feature_names if name not in rows.columns]
    if missing:
        raise ValueError(f"version {model.version} needs features the frame lacks: {missing}")
    matrix = rows.select(pl.col(model.feature_names).cast(pl.Float64)).to_numpy()
    return OnnxModel(model.onnx_bytes, model.feature_names).predict(matrix.astype(np.float32))


def decisions(rows: pl.DataFrame, predicted: np.ndarray | pl.Series) -> pl.DataFrame:
    """The replay's decision rows: time, instrument, prediction, spread and volatility."""
    nan = pl.lit(float("nan"))
    return rows.select(
        pl.col(ENTITY).alias("instrument"),
        pl.col(TIMESTAMP_FIELD).dt.epoch("ns").alias("time_ns"),
        pl.Series("predicted_return", predicted, dtype=pl.Float64),
        (pl.col(SPREAD_FEATURE) if SPREAD_FEATURE in rows.columns else nan).alias(SPREAD_FEATURE),
        (pl.col(VOLATILITY) if VOLATILITY in rows.columns else nan).alias(VOLATILITY),
    )


def lakehouse_markets(
    lake: Lakehouse, instruments: Iterable[str], days: Iterable[dt.date], bar_spread_bps: float
) -> dict[str, MarketTape]:
    """Each instrument's silver book and 1 s bars over ``days``."""
    days = sorted(set(days))
    markets = {}
    for instrument in instruments:
        diffs: list[LevelDiff] = []
        snapshots: list[LevelSnapshot] = []
        ends: list[int] = []
        closes: list[float] = []
        for day in days:
            day_diffs, day_snapshots = read_silver_book(lake, instrument, day)
            diffs += day_diffs
            snapshots += day_snapshots
            bars = read_partition(lake.table(BARS_1S_TABLE), day, instrument,
                                  columns=["bar_start", "close"]).sort("bar_start")  # fmt: skip
            ends += (bars["bar_start"].dt.epoch("ns") + NS).to_list()
            closes += bars["close"].to_list()
        book = BookTape(diffs, snapshots) if snapshots else None
        markets[instrument] = MarketTape(book, None, BarTape(ends, closes), bar_spread_bps)
    return markets


def backtest_version(
    model: LoadedModel,
    frame: pl.DataFrame,
    markets: Mapping[str, MarketTape],
    config: PaperConfig,
    label: str,
) -> VersionBacktest:
    """Replay the version over the frame's rows after its ``data_end`` (see the module)."""
    data_end = dt.datetime.fromisoformat(str(model.metadata["data_end"]))
    # The version's own signal scale, as the sidecar serving it uses.
    config = dataclasses.replace(
        config, signal_scale=signal_scale_of(model.metadata, config.signal_scale)
    )
    rows = unseen_rows(frame, data_end, label)
    chosen = decisions(rows, predicted_returns(model, rows) if rows.height else np.zeros(0))
    result = run_backtest(chosen, markets, config)
    last = chosen.with_columns(predicted_return=rows[LAST_RETURN])
    baseline_results = {
        "last_return": run_backtest(last, markets, config),
        "buy_and_hold": buy_and_hold(chosen, markets, config),
    }
    times = rows[TIMESTAMP_FIELD]
    return VersionBacktest(
        version=model.version,
        rows=rows.height,
        start=times.min() if rows.height else None,  # type: ignore[arg-type]
        end=times.max() if rows.height else None,  # type: ignore[arg-type]
        result=result,
        summary=summarize(result),
        baselines={name: summarize(r) for name, r in baseline_results.items()},
        baseline_results=baseline_results,
    )
