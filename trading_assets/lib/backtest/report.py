"""What a backtest made: equity and drawdown, Sharpe, turnover, P&L per day, fills by source.

Sharpe is annualized from per-minute returns of the equity (the last equity of each minute,
365 days of 1,440 minutes); turnover is the notional traded per day over the starting cash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from trading_assets.lib.backtest.paper import NS
from trading_assets.lib.backtest.replay import BacktestResult

MINUTES_PER_YEAR = 365 * 1_440


@dataclass(frozen=True)
class BacktestSummary:
    """A backtest's figures (P&L and fees in quote currency, the rest as fractions)."""

    pnl: float
    total_return: float
    sharpe: float
    max_drawdown: float
    turnover_per_day: float
    fees: float
    fills: int
    fills_by_source: dict[str, int]
    days: float

    def as_dict(self) -> dict[str, float]:
        """Flat figures, fills per source as ``fills_<source>``."""
        flat = {k: float(v) for k, v in vars(self).items() if k != "fills_by_source"}
        return flat | {f"fills_{s}": float(n) for s, n in self.fills_by_source.items()}


def with_drawdown(equity: pl.DataFrame) -> pl.DataFrame:
    """The equity curve with ``drawdown``: 1 − equity / its running high."""
    return equity.with_columns(drawdown=1.0 - pl.col("equity") / pl.col("equity").cum_max())


def pnl_per_day(result: BacktestResult) -> pl.DataFrame:
    """``day`` and ``pnl``: each UTC day's change of equity (the first from the starting cash)."""
    days = (
        result.equity.with_columns(day=pl.from_epoch("time_ns", time_unit="ns").dt.date())
        .group_by("day", maintain_order=True)
        .agg(pl.col("equity").last())
    )
    start = pl.concat([pl.Series([result.initial_cash]), days["equity"].head(days.height - 1)])
    return days.select("day", pnl=pl.col("equity") - start)


def sharpe(result: BacktestResult) -> float:
    """Annualized Sharpe of per-minute equity returns (NaN with fewer than two minutes)."""
    minutes = (
        result.equity.with_columns(minute=pl.col("time_ns") // (60 * NS))
        .group_by("minute", maintain_order=True)
        .agg(pl.col("equity").last())
    )
    returns = minutes["equity"].pct_change().drop_nulls()
    if returns.len() < 2:
        return math.nan
    values = returns.to_numpy()
    std = float(values.std(ddof=1))
    if std == 0.0:
        return 0.0
    return float(values.mean()) / std * math.sqrt(MINUTES_PER_YEAR)


def summarize(result: BacktestResult) -> BacktestSummary:
    """The figures of one backtest."""
    equity = result.equity
    if equity.is_empty():
        return BacktestSummary(0.0, 0.0, math.nan, 0.0, 0.0, 0.0, 0, {}, 0.0)
    final = float(equity["equity"][-1])
    span_ns = int(equity["time_ns"][-1]) - int(equity["time_ns"][0])
    days = max(span_ns / (86_400 * NS), 1 / 1_440)
    fills = result.fills
    traded = float(fills["notional"].abs().sum()) if fills.height else 0.0
    by_source = dict(fills.group_by("source").len().iter_rows()) if fills.height else {}
    return BacktestSummary(
        pnl=final - result.initial_cash,
        total_return=final / result.initial_cash - 1.0,
        sharpe=sharpe(result),
        max_drawdown=float(with_drawdown(equity)["drawdown"].max() or 0.0),  # type: ignore[arg-type]
        turnover_per_day=traded / result.initial_cash / days,
        fees=float(fills["fee"].sum()) if fills.height else 0.0,
        fills=fills.height,
        fills_by_source={str(k): int(v) for k, v in by_source.items()},
        days=days,
    )
