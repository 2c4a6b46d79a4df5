"""The sidecar's paper accounts: one per role, each order filled on the live book as it stood
when the order reached the venue, every decision and fill landed; and, on a synthetic hour of
captured book, the same fills, to the unit, as the backtest replaying the landed decisions."""

from __future__ import annotations

import datetime as dt
import math

import msgspec
import numpy as np
import polars as pl
import pytest
from prometheus_client import CollectorRegistry

from streaming.paper import LiveMarket, PaperDesk
from streaming.records import BookTicker
from streaming.simulator.synthetic import SyntheticMarket
from tests.unit.test_book_synthetic_day import synthetic_day_lines
from trading_assets.lib.backtest.fills import BAR, BOOK, TICKER
from trading_assets.lib.backtest.market import BookTape, MarketTape
from trading_assets.lib.backtest.paper import PaperConfig
from trading_assets.lib.backtest.records import PaperDecision, PaperFill
from trading_assets.lib.backtest.replay import run_backtest
from trading_assets.lib.book.lines import SYNC
from trading_assets.lib.book.rebuild import Book, LevelDiff, LevelSnapshot, levels_of
from trading_assets.lib.features.depth import DepthFeatures

pytestmark = pytest.mark.backtest
E8 = 100_000_000
NS = 1_000_000_000
SYMBOL = "BINANCE:BTCUSDT"
SCALE = 1e-3


class Landed:
    """What the desk lands, kept in lists."""

    def __init__(self) -> None:
        self.decisions: list[PaperDecision] = []
        self.fills: list[PaperFill] = []


def desk_over(book: dict[str, Book | None], config: PaperConfig) -> tuple[PaperDesk, Landed]:
    landed = Landed()
    market = LiveMarket(lambda: book["now"], lambda: None, lambda: None, 1.0)
    desk = PaperDesk({SYMBOL: market}, config, CollectorRegistry(), landed.decisions.append,
                     landed.fills.append)  # fmt: skip
    return desk, landed


def one_level(bid: int, ask: int) -> Book:
    return Book.of(LevelSnapshot(1, SYNC, 1, 0, [bid * E8], [50 * E8], [ask * E8], [50 * E8]))


def predict(desk: PaperDesk, role: str, at_s: float, predicted: float) -> None:
    values = {"spread_bps": 1.0, "rv_60s": 1e-4}
    desk.on_prediction(role, "7", SYMBOL, int(at_s * NS), predicted, values, 1, SCALE)


def test_each_role_fills_on_the_book_as_it_stood_when_its_order_arrived():
    # Arrange: the desk over a live book whose ask moves 50 ms after the order reached it
    live: dict[str, Book | None] = {"now": one_level(999, 1001)}
    desk, landed = desk_over(live, PaperConfig(latency_ns=NS // 10))

    # Act: the champion goes long at 100 s; records arrive at 100.05 s, then at 100.15 s, when
    # the book has moved; the shadow goes short at 101 s
    predict(desk, "champion", 100, 0.01)
    desk.before(int(100.05 * NS))
    filled_early = list(landed.fills)
    desk.before(int(100.15 * NS))  # before that record is applied: the order is due
    live["now"] = one_level(1004, 1005)
    predict(desk, "shadow", 101, -0.01)
    desk.before(int(101.2 * NS))

    # Assert: nothing filled before the order arrived; then each at its own role's book
    assert filled_early == []
    assert [(f.role, f.time_ns) for f in landed.fills] == [
        ("champion", int(100.1 * NS)), ("shadow", int(101.1 * NS)),
    ]  # fmt: skip
    assert [f.price for f in landed.fills] == pytest.approx([1001.0, 1004.0])
    assert [d.role for d in landed.decisions] == ["champion", "shadow"]
    # ... and a decision with a missing value lands as JSON that reads back
    desk.on_prediction("canary", "8", SYMBOL, int(102 * NS), 0.0, {}, 3, SCALE)
    line = msgspec.json.encode(landed.decisions[-1])
    assert msgspec.json.decode(line, type=PaperDecision) == landed.decisions[-1]
    assert landed.decisions[-1].spread_bps is None
    accounts = desk.snapshot()["accounts"]
    assert accounts["champion"]["positions"][SYMBOL]["quantity"] > 0
    assert accounts["shadow"]["positions"][SYMBOL]["quantity"] < 0
    fills = desk.metrics.fills.labels("champion", SYMBOL, BOOK)._value.get()
    assert fills == 1


def test_a_failing_market_is_counted_and_logged_never_raised(caplog):
    # Arrange: a market whose book cannot be read
    def broken() -> Book | None:
        raise RuntimeError("book unreadable")

    landed = Landed()
    desk = PaperDesk({SYMBOL: LiveMarket(broken, lambda: None, lambda: None, 1.0)}, PaperConfig(),
                     CollectorRegistry(), landed.decisions.append, landed.fills.append)  # fmt: skip

    # Act
    predict(desk, "champion", 100, 0.01)
    desk.before(int(101 * NS))

    # Assert: the prediction path goes on; the failure is on /metrics and in the log
    assert desk.metrics.errors._value.get() == 1
    assert "book unreadable" in caplog.text


def test_the_live_market_falls_back_from_the_book_to_the_ticker_to_the_last_trade():
    # Arrange: a book, then none; a ticker, then none; a last trade price throughout
    book: dict[str, Book | None] = {"now": one_level(999, 1001)}
    ticker: dict[str, BookTicker | None] = {"now": BookTicker(
        venue="BINANCE", symbol="BTCUSDT", update_id=1, bid_price="998.5", bid_qty="2",
        ask_price="1002.5", ask_qty="3", event_ns=0, receive_ns=0,
    )}  # fmt: skip
    market = LiveMarket(lambda: book["now"], lambda: ticker["now"], lambda: 1000.0, 2.0)

    # Act / Assert: each source in turn, each fill saying which it used
    on_book = market.fill(0, 100.0, 10.0)
    book["now"] = None
    on_ticker, mid_ticker = market.fill(0, 100.0, 10.0), market.mid(0)
    ticker["now"] = None
    on_trade, mid_trade = market.fill(0, -100.0, 10.0), market.mid(0)
    assert on_book is not None and on_ticker is not None and on_trade is not None
    assert (on_book.source, on_book.average_price) == (BOOK, 1001.0)
    assert (on_ticker.source, on_ticker.average_price, mid_ticker) == (TICKER, 1002.5, 1000.5)
    assert on_trade.source == BAR and mid_trade == 1000.0
    assert on_trade.average_price == pytest.approx(1000.0 * (1 - 1e-4))  # half of 2 bp, sold


def test_the_paper_account_and_the_backtest_of_its_landed_decisions_fill_alike():
    # Arrange: a synthetic day's captured book until 16:00, applied as the sidecar applies it
    # (the depth features' own book); from 15:00, its busiest hour, a prediction a second, the
    # simulator's oracle
    tape, diffs, snapshots = synthetic_day_lines(SyntheticMarket(seed=5), "BTCUSDT", DAY)
    lines = sorted([*map(levels_of, diffs), *map(levels_of, snapshots)], key=receive_time)
    lines = [line for line in lines if receive_time(line) < START_NS + 3_600 * NS]
    features = DepthFeatures(SYMBOL)
    live: dict[str, Book | None] = {"now": None}
    # Orders big enough to walk several levels, whose sizes change with every diff
    config = PaperConfig(signal_scale=SCALE, initial_cash=5e6)
    desk, landed = desk_over(live, config)
    seconds = range(START_NS // NS + 120, START_NS // NS + 3_540)
    oracle = tape.expected_forward_return(np.array([s * 1_000_000 for s in seconds]), 60)
    decisions = iter(zip((s * NS for s in seconds), oracle.tolist(), strict=True))
    next_decision = next(decisions, None)

    # Act: every line and every decision in time order, as the sidecar would see them
    for line in lines:
        while next_decision is not None and next_decision[0] < receive_time(line):
            predict(desk, "champion", next_decision[0] / NS, next_decision[1])
            next_decision = next(decisions, None)
        desk.before(receive_time(line))
        features.on_line(line)
        live["now"] = features.book
    replayed = run_backtest(
        pl.DataFrame([{
            "instrument": d.symbol, "time_ns": d.time_ns, "predicted_return": d.predicted_return,
            "spread_bps": d.spread_bps, "rv_60s": d.rv_60s, "fallback_level": d.fallback_level,
        } for d in landed.decisions]),
        {SYMBOL: MarketTape(BookTape(*split(lines)))},
        config,
    ).fills  # fmt: skip

    # Assert: the same orders, at the same times, for the same quantities and prices
    last_ns = replayed["time_ns"].to_list()[-1]
    paper = [f for f in landed.fills if f.time_ns <= last_ns]
    assert len(paper) > 20
    ends = replayed.filter(pl.col("reason") != "end")
    assert len(paper) == ends.height
    for fill, row in zip(paper, ends.iter_rows(named=True), strict=True):
        assert (fill.time_ns, fill.reason, fill.source) == (row["time_ns"], row["reason"], BOOK)
        assert math.isclose(fill.quantity, row["quantity"], rel_tol=1e-12)
        assert math.isclose(fill.price, row["price"], rel_tol=1e-12)
        assert fill.levels == row["levels"]
    assert max(f.levels for f in paper) > 1


DAY = dt.date(2024, 5, 2)
START_NS = int(dt.datetime.combine(DAY, dt.time(15), dt.UTC).timestamp()) * NS  # its busiest hour


def receive_time(line: LevelDiff | LevelSnapshot) -> int:
    return line.receive_ns if isinstance(line, LevelDiff) else line.taken_ns


def split(lines: list) -> tuple[list[LevelDiff], list[LevelSnapshot]]:
    return ([x for x in lines if isinstance(x, LevelDiff)],
            [x for x in lines if isinstance(x, LevelSnapshot)])  # fmt: skip
