"""The backtest: decision rows replayed on market tapes by the paper trader, from the start of
the tapes, every position closed at the end (:mod:`trading_assets.lib.backtest.paper`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from trading_assets.lib.backtest.market import MarketTape
from trading_assets.lib.backtest.paper import (
    FILL_SCHEMA,
    FULL_FEATURES_LEVEL,
    PaperConfig,
    PaperTrader,
)
from trading_assets.lib.models.policy import SPREAD_FEATURE

VOLATILITY = "rv_60s"
LEVEL = "fallback_level"
DECISION_COLUMNS = ("instrument", "time_ns", "predicted_return")


@dataclass
class BacktestResult:
    """The fills, the equity after every decision, and what the risk engine counted."""

    fills: pl.DataFrame
    equity: pl.DataFrame
    counters: dict[str, int]
    initial_cash: float
    unfilled_orders: int = 0


def _column(frame: pl.DataFrame, name: str) -> list[float]:
    if name not in frame.columns:
        return [math.nan] * frame.height
    return frame[name].cast(pl.Float64).fill_null(math.nan).to_list()


def _checked(decisions: pl.DataFrame, markets: Mapping[str, MarketTape]) -> pl.DataFrame:
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"decisions lack the columns {missing}")
    unknown = set(decisions["instrument"].unique().to_list()) - set(markets)
    if unknown:
        raise ValueError(f"no market tape for {sorted(unknown)}")
    for market in markets.values():
        market.rewind()
    return decisions.sort("time_ns", "instrument", maintain_order=True)


def _result(replay: PaperTrader, times: list[int], equities: list[float]) -> BacktestResult:
    """Close what is held after the last decision, then the result."""
    if times:
        times.append(replay.close_all(times[-1]))
        equities.append(replay.account.equity(replay.marks))
    return BacktestResult(
        fills=pl.DataFrame(replay.fills, schema=FILL_SCHEMA, orient="row"),
        equity=pl.DataFrame(
            {"time_ns": times, "equity": equities},
            schema={"time_ns": pl.Int64, "equity": pl.Float64},
        ),
        counters=dict(replay.risk.counters),
        initial_cash=replay.config.initial_cash,
        unfilled_orders=replay.unfilled,
    )


def buy_and_hold(
    decisions: pl.DataFrame, markets: Mapping[str, MarketTape], config: PaperConfig
) -> BacktestResult:
    """The gate's buy-and-hold baseline through the same fills: at the first decision, buy the
    largest position the risk limits allow in each instrument, hold it to the last, sell."""
    rows = _checked(decisions, markets)
    replay = PaperTrader(markets, config)
    times, equities = [], []
    for now_ns, symbol in zip(rows["time_ns"].to_list(), rows["instrument"].to_list(), strict=True):
        replay.execute_until(now_ns)
        mid = markets[symbol].mid(now_ns)
        if mid is not None:
            replay.marks[symbol] = mid
            if symbol not in replay.bought:
                replay.bought.add(symbol)
                stake = config.limits.max_position_fraction * config.initial_cash
                replay.order(now_ns, symbol, stake, "open")
        times.append(now_ns)
        equities.append(replay.account.equity(replay.marks))
    return _result(replay, times, equities)


def run_backtest(
    decisions: pl.DataFrame, markets: Mapping[str, MarketTape], config: PaperConfig
) -> BacktestResult:
    """Replay ``decisions`` (``instrument``, ``time_ns``, ``predicted_return``, and the
    ``spread_bps`` and ``rv_60s`` the rule and the breakers read, NaN where missing, and the
    ``fallback_level`` of a live decision, 1 where missing) on ``markets`` (one tape per
    instrument, replayed from its start) as the sidecar would have traded them."""
    rows = _checked(decisions, markets)
    replay = PaperTrader(markets, config)
    times, equities = [], []
    levels = (rows[LEVEL].to_list() if LEVEL in rows.columns
              else [FULL_FEATURES_LEVEL] * rows.height)  # fmt: skip
    columns = zip(rows["time_ns"].to_list(), rows["instrument"].to_list(),
                  _column(rows, "predicted_return"), _column(rows, SPREAD_FEATURE),
                  _column(rows, VOLATILITY), levels, strict=True)  # fmt: skip
    for now_ns, symbol, predicted, spread, vol, level in columns:
        replay.execute_until(now_ns)
        replay.decide(now_ns, symbol, predicted, spread, vol, level)
        times.append(now_ns)
        equities.append(replay.account.equity(replay.marks))
    return _result(replay, times, equities)
