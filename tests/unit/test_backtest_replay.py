"""The backtest's replay: what it fills on (the book where a segment covers the moment, else a
ticker, else a bar), when (the decision plus the latency), and that bad input is refused."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from trading_assets.lib.backtest.fills import BAR, BOOK, TICKER
from trading_assets.lib.backtest.market import BarTape, BookTape, MarketTape, TickerTape
from trading_assets.lib.backtest.paper import PaperConfig
from trading_assets.lib.backtest.replay import run_backtest
from trading_assets.lib.backtest.report import pnl_per_day, summarize, with_drawdown
from trading_assets.lib.book.lines import PERIODIC, SYNC
from trading_assets.lib.book.rebuild import LevelDiff, LevelSnapshot

pytestmark = pytest.mark.backtest
E8 = 100_000_000
NS = 1_000_000_000
SYMBOL = "BINANCE:BTCUSDT"


def sync(segment: int, taken_s: float, update_id: int, bid: int, ask: int,
         lost_s: float | None = None) -> LevelSnapshot:  # fmt: skip
    lost = None if lost_s is None else int(lost_s * NS)
    return LevelSnapshot(segment, SYNC, update_id, int(taken_s * NS), [bid * E8], [50 * E8],
                         [ask * E8], [50 * E8], lost)  # fmt: skip


def move(segment: int, at_s: float, update_id: int, bid: int, ask: int, old_bid: int,
         old_ask: int) -> LevelDiff:  # fmt: skip
    """A diff moving the one-level book from (old_bid, old_ask) to (bid, ask)."""
    return LevelDiff(segment, update_id, update_id, int(at_s * NS), [old_bid * E8, bid * E8],
                     [0, 50 * E8], [old_ask * E8, ask * E8], [0, 50 * E8])  # fmt: skip


def decisions(times_s: list[float], predicted: float | list[float] = 0.01) -> pl.DataFrame:
    """Rows predicting ``predicted`` (by default 1 %, far over costs: long whenever the breakers
    let it)."""
    return pl.DataFrame({
        "instrument": SYMBOL, "time_ns": [int(t * NS) for t in times_s],
        "predicted_return": predicted, "spread_bps": 1.0, "rv_60s": 1e-4,
    })  # fmt: skip


def bars(times_s: list[float], close: float) -> BarTape:
    return BarTape([int(t * NS) for t in times_s], [close] * len(times_s))


def test_orders_fill_on_the_book_where_a_segment_covers_them_else_on_tickers_else_on_bars():
    # Arrange: a book segment over 100-200 s (lost at 200 s), tickers over 250-300 s, bars always
    book = BookTape([], [sync(1, 100, 10, 999, 1001), sync(2, 400, 20, 999, 1001, lost_s=200)])
    ticker_s = np.arange(250, 301, dtype=np.int64)
    tickers = TickerTape(ticker_s * NS, np.full(51, 998.0), np.full(51, 1.0),
                         np.full(51, 1002.0), np.full(51, 1.0))  # fmt: skip
    market = MarketTape(book, tickers, bars(list(range(0, 601)), 1000.0), bar_spread_bps=4.0)
    config = PaperConfig(horizon_s=30, latency_ns=NS // 10)

    # Act: a long opened, then closed by the next decision past the horizon, which is flat
    rows = decisions([10, 45, 130, 165, 260, 295, 330], [0.01, 0.0] * 3 + [0.01])
    result = run_backtest(rows, {SYMBOL: market}, config)

    # Assert: each fill says where it came from, and paid what that source costs
    fills = result.fills
    assert fills["source"].to_list() == [BAR, BAR, BOOK, BOOK, TICKER, TICKER, BAR, BAR]
    assert fills["reason"].to_list() == ["open", "close"] * 3 + ["open", "end"]
    by_source = {s: f for (s,), f in fills.group_by("source")}
    assert by_source[BOOK]["price"].to_list() == [1001.0, 999.0]  # the touch of the book
    assert by_source[TICKER]["price"].to_list() == [1002.0, 998.0]  # the ticker's touch
    assert by_source[BAR]["price"].to_list() == pytest.approx([1000.2, 999.8] * 2)  # close ± 2 bp
    assert (fills["time_ns"] - fills["decided_ns"]).unique().to_list() == [NS // 10]
    assert summarize(result).fills_by_source == {BAR: 4, BOOK: 2, TICKER: 2}


def test_an_order_fills_on_the_book_as_it_stands_when_the_order_arrives():
    # Arrange: the ask moves from 1001 to 1005 50 ms after the decision
    later = LevelSnapshot(1, PERIODIC, 11, 200 * NS, [1004 * E8], [50 * E8], [1005 * E8], [50 * E8])
    book_lines = ([move(1, 100.05, 11, 1004, 1005, 999, 1001)],
                  [sync(1, 99, 10, 999, 1001), later])  # fmt: skip

    def first_price(latency_ns: int) -> float:
        market = MarketTape(BookTape(*book_lines))
        config = PaperConfig(latency_ns=latency_ns)
        return run_backtest(decisions([100]), {SYMBOL: market}, config).fills["price"][0]

    # Act / Assert: a fast order takes the old ask, a slow one the new
    assert first_price(10_000_000) == 1001.0
    assert first_price(100_000_000) == 1005.0


def test_equity_follows_the_fills_and_ends_flat():
    # Arrange: the price rises 1 % while a long position is held, on bars with no spread
    prices = BarTape([k * NS for k in range(0, 200)], [1000.0] * 100 + [1010.0] * 100)
    market = MarketTape(bars=prices, bar_spread_bps=0.0)
    config = PaperConfig(horizon_s=1_000, fee_bp=0.0, latency_ns=0)

    # Act: buy at 50 s, hold to the end at 150 s
    result = run_backtest(decisions([50, 150]), {SYMBOL: market}, config)

    # Assert: the P&L is the position's 1 % on its notional, with nothing held at the end
    fills = result.fills
    bought = fills.filter(pl.col("reason") == "open")["notional"][0]
    summary = summarize(result)
    assert bought == pytest.approx(config.initial_cash * config.limits.max_position_fraction)
    assert summary.pnl == pytest.approx(bought * 0.01)
    assert fills["quantity"].sum() == pytest.approx(0.0, abs=1e-12)
    assert with_drawdown(result.equity)["drawdown"].max() == 0.0
    assert pnl_per_day(result)["pnl"].sum() == pytest.approx(summary.pnl)


def test_bad_input_is_refused_with_the_reason():
    market = MarketTape(bars=bars([0, 1], 1000.0))
    with pytest.raises(ValueError, match="predicted_return"):
        run_backtest(decisions([1]).drop("predicted_return"), {SYMBOL: market}, PaperConfig())
    with pytest.raises(ValueError, match="no market tape"):
        run_backtest(decisions([1]), {}, PaperConfig())
    tape = BookTape([], [sync(1, 1, 1, 999, 1001), LevelSnapshot(1, PERIODIC, 1, 2 * NS,
                    [999 * E8], [E8], [1001 * E8], [E8])])  # fmt: skip
    tape.at(5 * NS)
    with pytest.raises(ValueError, match="forward only"):
        tape.at(4 * NS)
