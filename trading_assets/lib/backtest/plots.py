"""Charts of a backtest for Dagster metadata: equity against the baselines with the drawdown
below it, and P&L per day."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import polars as pl

from trading_assets.lib.backtest.replay import BacktestResult
from trading_assets.lib.backtest.report import pnl_per_day, with_drawdown
from trading_assets.lib.plots import figure_markdown

MAX_POINTS = 2_000  # equity points drawn per line (the curve is thinned evenly)


def _thinned(equity: pl.DataFrame) -> pl.DataFrame:
    step = max(1, equity.height // MAX_POINTS)
    return equity.gather_every(step).with_columns(time=pl.from_epoch("time_ns", time_unit="ns"))


def equity_markdown(model: BacktestResult, baselines: Mapping[str, BacktestResult], title: str
                    ) -> str:  # fmt: skip
    """Return on the starting cash over time, the model's and each baseline's, and the model's
    drawdown below."""
    if model.equity.height < 2:
        return f"_{title}: nothing to plot (no decisions)_"
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(6.0, 4.0), dpi=72, sharex=True, height_ratios=(3, 1)
    )
    for name, result in [("model", model), *baselines.items()]:
        curve = _thinned(result.equity)
        growth = (curve["equity"] / result.initial_cash - 1.0) * 100
        top.plot(curve["time"], growth, linewidth=1.5 if name == "model" else 0.8, label=name)
    top.axhline(0, linewidth=0.5, color="black")
    top.set_ylabel("return (%)", fontsize=7)
    top.set_title(title, fontsize=8)
    top.legend(fontsize=6)
    drawn = _thinned(with_drawdown(model.equity))
    bottom.fill_between(drawn["time"], -drawn["drawdown"] * 100, 0, color="tab:red", alpha=0.5)
    bottom.set_ylabel("drawdown (%)", fontsize=7)
    for axis in (top, bottom):
        axis.tick_params(labelsize=6)
    figure.autofmt_xdate()
    return figure_markdown(figure, title)


def daily_pnl_markdown(result: BacktestResult, title: str) -> str:
    """P&L (quote) per UTC day, gains and losses in their colours."""
    days = pnl_per_day(result)
    if days.is_empty():
        return f"_{title}: no days_"
    figure, axis = plt.subplots(figsize=(6.0, 2.2), dpi=72)
    colours = ["tab:green" if v >= 0 else "tab:red" for v in days["pnl"]]
    axis.bar([str(d) for d in days["day"]], days["pnl"], color=colours)
    axis.axhline(0, linewidth=0.5, color="black")
    axis.set_ylabel("P&L (quote)", fontsize=7)
    axis.set_title(title, fontsize=8)
    axis.tick_params(labelsize=6)
    return figure_markdown(figure, title)
