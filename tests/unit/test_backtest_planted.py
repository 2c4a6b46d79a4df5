"""Ground truth for the backtest: on a synthetic day's captured book, trading the simulator's own
oracle (the drift it planted, known ahead) makes money after fees and slippage; without the
edge the oracle predicts nothing and nothing is traded; and a coin flip loses what the costs
take, no more."""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
import polars as pl
import pytest

from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.tape import DayTape
from tests.unit.test_book_synthetic_day import synthetic_day_lines
from trading_assets.lib.backtest.fills import BOOK
from trading_assets.lib.backtest.market import BookTape, MarketTape
from trading_assets.lib.backtest.paper import PaperConfig
from trading_assets.lib.backtest.replay import BacktestResult, run_backtest
from trading_assets.lib.backtest.report import BacktestSummary, summarize
from trading_assets.lib.book.rebuild import levels_of

pytestmark = pytest.mark.backtest
DAY = dt.date(2024, 5, 2)
SYMBOL = "BTCUSDT"
HOURS = 8
HORIZON_S = 60


@cache
def day(edge: float) -> tuple[DayTape, list, list]:
    tape, diffs, snapshots = synthetic_day_lines(SyntheticMarket(seed=5, edge=edge), SYMBOL, DAY)
    return tape, [levels_of(d) for d in diffs], [levels_of(s) for s in snapshots]


def decision_rows(tape: DayTape, predicted) -> pl.DataFrame:
    """A decision a second, with the spread and the 60 s realized volatility of the mid."""
    start_us = int(dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp()) * 1_000_000
    at_us = start_us + np.arange(120, HOURS * 3_600) * 1_000_000
    now = np.searchsorted(tape.order_time_us, at_us, side="right") - 1
    mid = tape.order_bid_ticks[now].astype(float) + 0.5  # in ticks: the ask is one above
    moves = np.diff(np.log(mid), prepend=np.log(mid[0])) ** 2
    window = np.cumsum(moves) - np.concatenate([np.zeros(60), np.cumsum(moves)[:-60]])
    return pl.DataFrame({
        "instrument": SYMBOL, "time_ns": at_us * 1_000, "predicted_return": predicted(tape, at_us),
        "spread_bps": 1e4 / mid, "rv_60s": np.sqrt(np.maximum(window, 0.0)),
    })  # fmt: skip


def backtest(edge: float, predicted) -> tuple[BacktestResult, BacktestSummary]:
    tape, diffs, snapshots = day(edge)
    market = MarketTape(book=BookTape(diffs, snapshots))
    result = run_backtest(decision_rows(tape, predicted), {SYMBOL: market},
                          PaperConfig(horizon_s=HORIZON_S))  # fmt: skip
    return result, summarize(result)


def oracle(tape: DayTape, at_us: np.ndarray) -> np.ndarray:
    return tape.expected_forward_return(at_us, HORIZON_S)


def coin(tape: DayTape, at_us: np.ndarray) -> np.ndarray:
    """±30 bp at random: far over the round trip, so it trades whenever the breakers let it."""
    return np.random.default_rng(0).choice([-3e-3, 3e-3], at_us.size)


def test_trading_the_planted_drift_pays_after_costs_on_the_captured_book():
    result, summary = backtest(1.0, oracle)

    assert summary.fills > 100
    assert summary.fills_by_source == {BOOK: summary.fills}  # every order walked the book
    assert summary.pnl > 0.25 * summary.fees > 0  # money made after fees and slippage
    assert summary.sharpe > 3
    assert result.unfilled_orders == 0
    assert result.fills["unfilled"].max() == 0.0  # the book was deep enough for every order


def test_without_the_edge_the_oracle_sees_nothing_to_trade():
    result, summary = backtest(0.0, oracle)

    assert result.counters["blocked_below_cost"] == result.counters["decisions"] > 25_000
    assert summary.fills == 0 and summary.pnl == 0.0


def test_a_coin_flip_loses_its_costs_and_no_more():
    result, summary = backtest(0.0, coin)

    gross = summary.pnl + summary.fees  # what the direction made, before the fees
    assert summary.fills > 1_000
    assert summary.pnl < 0
    assert abs(gross) < 0.1 * summary.fees
    assert (
        result.fills["slippage_bps"].to_numpy().min() >= 0.0
    )  # a market order never beats the mid
