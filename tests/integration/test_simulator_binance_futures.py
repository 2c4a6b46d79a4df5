"""The simulator's Binance USD-M futures streams, read through the real MarketFeed.

The perpetual trades the synthetic tape of its symbol, so every trade the feed hands out is
compared with the synthetic market's own trades of that id (read from the market, not from the
streams), every depth diff is applied to a book built from the synthetic book's snapshot, and the
mark price is compared with the tape's last trade. The market runs from a busy afternoon at 10×
wall-clock pace, so a few seconds carry hundreds of trades and dozens of mark price updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import numpy as np
import polars as pl
import pytest
import websockets
from aiohttp import web

from streaming.ingest import Backoff, MarketFeed, read_dead_letters
from streaming.records import (
    PERPETUAL,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    FundingRate,
    MarketRecord,
    Trade,
)
from streaming.simulator import synthetic_book
from streaming.simulator.binance_futures import FuturesStreams, funding_rate
from streaming.simulator.clock import market_clock
from streaming.simulator.history import MarketHistory
from streaming.simulator.server import SimulatorServer
from streaming.simulator.synthetic import SyntheticMarket
from streaming.venues import venue
from streaming.venues.binance.book import OrderBook

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(30)]
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
SPEED = 10.0
SYMBOL = "BTCUSDT"
MS_TO_NS = 1_000_000
FUNDING_INTERVAL_NS = 8 * 3600 * 1_000_000_000
TradeKey = tuple[int, str, str, bool, int]
FUTURES = venue("binance_futures")


@dataclass
class Sim:
    """The futures streams under test and where they listen."""

    streams: FuturesStreams
    ws_url: str
    http_url: str

    @property
    def history(self) -> MarketHistory:
        """The market, with the lock that guards its caches while the streams run."""
        return self.streams.history


@contextlib.asynccontextmanager
async def serving(streams: FuturesStreams) -> AsyncIterator[str]:
    """Serve ``streams`` on a local aiohttp app; yields the server's base URL (host:port)."""
    app = web.Application()
    app.add_routes(streams.routes())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        await streams.start()
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await streams.stop()
        await runner.cleanup()


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7)


@pytest.fixture
async def sim(market: SyntheticMarket) -> AsyncIterator[Sim]:
    streams = FuturesStreams(market, market_clock(BUSY_AFTERNOON, speed=SPEED), [SYMBOL])
    async with serving(streams) as address:
        yield Sim(streams, streams.ws_url(f"ws://{address}"), f"http://{address}")


def futures_feed(sim: Sim, tmp_path: Path, *channels: str, **options) -> MarketFeed:
    options.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.2))
    return MarketFeed(
        sim.ws_url, sim.http_url, [SYMBOL], venue=FUTURES, channels=channels or None,
        dead_letter_path=tmp_path / "dead.jsonl", **options,
    )  # fmt: skip


async def collect(
    feed: MarketFeed, until: Callable[[list[MarketRecord]], bool], timeout_s: float = 10.0
) -> list[MarketRecord]:
    """Records until ``until(records)`` holds."""
    records: list[MarketRecord] = []
    async with asyncio.timeout(timeout_s):
        async for record in feed:
            records.append(record)
            if until(records):
                return records
    raise AssertionError("the feed ended")


def count(kind: type) -> Callable[[list[MarketRecord]], int]:
    return lambda records: sum(type(r) is kind for r in records)


def trade_keys(records: list[MarketRecord]) -> list[TradeKey]:
    return [
        (r.trade_id, r.price, r.quantity, r.is_buyer_maker, r.trade_ns)
        for r in records
        if isinstance(r, Trade)
    ]


def tape_trades(history: MarketHistory, ids: list[int]) -> list[TradeKey]:
    """The synthetic market's trades of these ids, in its bulk-file columns (times in ms)."""
    market = history.market
    day = history.locked(market.day_of_trade_id, SYMBOL, ids[0])
    assert history.locked(market.day_of_trade_id, SYMBOL, ids[-1]) == day
    frame = history.locked(market.day_trades, SYMBOL, day).filter(pl.col("id").is_in(ids))
    return [
        (row["id"], row["price"], row["qty"], row["is_buyer_maker"], row["time"] * MS_TO_NS)
        for row in frame.iter_rows(named=True)
    ]


def assert_tape(history: MarketHistory, records: list[MarketRecord]) -> list[int]:
    """The records' trades are the tape's, ids increasing; returns their ids."""
    trades = trade_keys(records)
    ids = [t[0] for t in trades]
    assert trades, "no trades"
    assert ids == sorted(set(ids))
    assert trades == tape_trades(history, ids)
    return ids


def assert_perpetual(records: list[MarketRecord]) -> None:
    assert records
    assert {(r.venue, r.market) for r in records} == {("BINANCE_FUTURES", PERPETUAL)}


async def test_trades_are_the_tapes_and_every_record_is_the_perpetuals(
    sim: Sim, tmp_path: Path
) -> None:
    trades, rates = count(Trade), count(FundingRate)
    async with futures_feed(sim, tmp_path) as feed:  # the venue's default channels
        records = await collect(feed, lambda r: trades(r) >= 400 and rates(r) >= 3)

    assert_perpetual(records)
    ids = assert_tape(sim.history, records)
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no liquidation fills: contiguous
    kinds = {type(r) for r in records}
    assert kinds == {Trade, BookTicker, FundingRate, DepthUpdate}
    assert all(
        r.event_ns is not None and r.event_ns >= r.trade_ns for r in records if isinstance(r, Trade)
    )
    assert feed.stats.frames_dead_lettered == 0
    assert list(read_dead_letters(tmp_path / "dead.jsonl")) == []
    assert feed.stats.reconnects == {}


async def test_spot_and_perpetual_trade_the_same_tape(
    market: SyntheticMarket, tmp_path: Path
) -> None:
    # Arrange: the simulator serves both, on its one port
    clock = market_clock(BUSY_AFTERNOON, speed=SPEED)
    async with SimulatorServer(symbols=[SYMBOL], clock_ns=clock, market=market) as sim:
        spot_feed = MarketFeed(
            sim.ws_url, sim.http_url, [SYMBOL], dead_letter_path=tmp_path / "spot.jsonl"
        )
        perp_feed = MarketFeed(
            sim.futures_ws_url, sim.http_url, [SYMBOL], venue=FUTURES, channels=["trade"],
            dead_letter_path=tmp_path / "perp.jsonl",
        )  # fmt: skip

        # Act
        async with spot_feed, perp_feed:
            enough = count(Trade)
            spot_records, perp_records = await asyncio.gather(
                collect(spot_feed, lambda r: enough(r) >= 300),
                collect(perp_feed, lambda r: enough(r) >= 300),
            )

    # Assert
    spot_trades = {t[0]: t for t in trade_keys(spot_records)}
    perp_trades = {t[0]: t for t in trade_keys(perp_records)}
    common = spot_trades.keys() & perp_trades.keys()
    assert len(common) >= 200
    assert all(spot_trades[i] == perp_trades[i] for i in common)
    assert {(r.venue, r.market) for r in spot_records if isinstance(r, Trade)} == {
        ("BINANCE", "spot")
    }
    assert_perpetual(perp_records)


async def test_funding_rates_arrive_each_second_with_a_mark_at_the_last_trade(
    sim: Sim, tmp_path: Path
) -> None:
    rates = count(FundingRate)
    async with futures_feed(sim, tmp_path, "markPrice@1s") as feed:
        records = await collect(feed, lambda r: rates(r) >= 25)

    assert_perpetual(records)
    updates = [r for r in records if isinstance(r, FundingRate)]
    seconds = [r.event_ns // 1_000_000_000 for r in updates]
    assert all(r.event_ns % 1_000_000_000 == 0 for r in updates)
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))
    tape = sim.history.locked(sim.history.market.tape, SYMBOL, BUSY_AFTERNOON.date())
    tick = Decimal(tape.instrument.tick_e8) / 100_000_000
    for update in updates:
        assert update.next_funding_ns is not None and update.index_price is not None
        assert update.next_funding_ns % FUNDING_INTERVAL_NS == 0  # 00:00, 08:00, 16:00 UTC
        assert 0 < update.next_funding_ns - update.event_ns <= FUNDING_INTERVAL_NS
        assert abs(Decimal(update.funding_rate)) <= Decimal("0.003")
        done = int(np.searchsorted(tape.trade_time_us, update.event_ns // 1000, side="right"))
        last_price = Decimal(int(tape.trade_price_ticks[done - 1])) * tick
        mark, index = Decimal(update.mark_price), Decimal(update.index_price)
        assert abs(mark - last_price) <= tick / 2
        assert abs(mark / index - 1) <= Decimal("0.0031")  # the premium is at most 0.3 %


@pytest.mark.parametrize(
    ("average_premium", "rate"),
    [
        (0.0, 0.0001),  # the interest rate alone
        (-0.0003, 0.0001),  # within the ±0.05 % clamp of the interest rate
        (0.0006, 0.0001),
        (0.002, 0.0015),  # beyond it: the premium less the clamp
        (-0.0006, -0.0001),
        (0.01, 0.003),  # capped
        (-0.01, -0.003),  # floored
    ],
)
def test_the_funding_rate_follows_binances_rule(average_premium: float, rate: float) -> None:
    assert funding_rate(average_premium) == pytest.approx(rate, abs=1e-12)


async def test_the_three_second_mark_price_stream_and_raw_stream_path(sim: Sim) -> None:
    async with websockets.connect(f"{sim.ws_url}/ws/btcusdt@markPrice") as connection:
        async with asyncio.timeout(5):
            frames = [json.loads(await connection.recv()) for _ in range(3)]

    assert [frame["e"] for frame in frames] == ["markPriceUpdate"] * 3  # bare, not enveloped
    assert [b["E"] - a["E"] for a, b in itertools.pairwise(frames)] == [3000, 3000]


def snapshot_at(history: MarketHistory, update_id: int) -> DepthSnapshot:
    """The synthetic book as of ``update_id`` (``first_agg_id + j + 1`` after order ``j``)."""
    tape = history.locked(history.market.tape, SYMBOL, BUSY_AFTERNOON.date())
    state = synthetic_book.state_after(tape, update_id - tape.first_agg_id - 1)
    assert state.update_id == update_id
    body = json.loads(synthetic_book.snapshot_json(tape.instrument, state, 1000))
    bids = tuple((price, quantity) for price, quantity in body["bids"])
    asks = tuple((price, quantity) for price, quantity in body["asks"])
    return DepthSnapshot(SYMBOL, body["lastUpdateId"], bids, asks, 0, "BINANCE_FUTURES", PERPETUAL)


@pytest.mark.parametrize(("channel", "diffs"), [("depth@0ms", 150), ("depth@100ms", 15)])
async def test_depth_diffs_keep_a_book_whose_top_is_the_book_ticker(
    sim: Sim, tmp_path: Path, channel: str, diffs: int
) -> None:
    depth = count(DepthUpdate)
    async with futures_feed(sim, tmp_path, "bookTicker", channel) as feed:
        records = await collect(feed, lambda r: depth(r) >= diffs)

    assert_perpetual(records)
    updates = [r for r in records if isinstance(r, DepthUpdate)]
    tickers = {r.update_id: r for r in records if isinstance(r, BookTicker)}
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot_at(sim.history, updates[0].first_update_id - 1))
    compared = 0
    for update in updates:
        assert book.apply_update(update)  # the chain holds: U is the previous u + 1
        ticker = tickers.get(update.final_update_id)
        if ticker is not None:
            assert book.best_bid() == (ticker.bid_price, ticker.bid_qty)
            assert book.best_ask() == (ticker.ask_price, ticker.ask_qty)
            compared += 1
    assert compared >= len(updates) - 2  # the first tickers may precede the subscription
    assert feed.stats.reconnects == {}


async def test_a_broken_depth_chain_makes_the_feed_resubscribe(sim: Sim, tmp_path: Path) -> None:
    depth = count(DepthUpdate)
    async with futures_feed(sim, tmp_path, "trade", "depth@0ms") as feed:
        before = await collect(feed, lambda r: depth(r) >= 30)
        async with aiohttp.ClientSession() as http:
            url = f"{sim.http_url}/_sim/fapi/break_depth_chain"
            async with http.post(url, params={"times": "1"}) as response:
                assert response.status == 200
                assert (await response.json())["pending"] in (0, 1)
        after = await collect(feed, lambda r: feed.stats.connections_opened == 2 and depth(r) >= 30)

    assert feed.stats.reconnects == {"sequence_gap": 1}
    assert sim.streams.faults.applied["depth_chain_broken"] == 1
    assert_perpetual(before + after)
    assert_tape(sim.history, before + after)


async def test_a_dropped_connection_is_recovered(sim: Sim, tmp_path: Path) -> None:
    sim.streams.faults.update(drop_after_messages=150)
    trades = count(Trade)
    feed = futures_feed(sim, tmp_path, "trade", "bookTicker")

    def recovered(records: list[MarketRecord]) -> bool:
        if feed.stats.reconnects["dropped"] >= 2 and sim.streams.faults.plan.drop_after_messages:
            sim.streams.faults.clear()
            del records[:]  # from here on, only what the healthy connection brings
        return not sim.streams.faults.plan.drop_after_messages and trades(records) >= 100

    async with feed:
        first = await collect(feed, lambda r: trades(r) > 0)
        records = await collect(feed, recovered)

    assert feed.stats.reconnects == {"dropped": 2}
    assert feed.stats.connections_opened == 3
    assert_perpetual(records)
    assert_tape(sim.history, first + records)


async def test_a_stalled_stream_trips_the_watchdog_and_recovers(sim: Sim, tmp_path: Path) -> None:
    sim.streams.faults.update(stall_after_messages=60, stall_seconds=5)
    trades = count(Trade)
    # Mark prices every market second keep a healthy connection from ever falling quiet.
    feed = futures_feed(sim, tmp_path, "trade", "markPrice@1s", watchdog_s=2.0)

    def recovered(records: list[MarketRecord]) -> bool:
        if feed.stats.reconnects["watchdog"] and sim.streams.faults.plan.stall_seconds:
            sim.streams.faults.clear()  # stalls are once per connection: keep the next healthy
            del records[:]
        return feed.stats.reconnects["watchdog"] > 0 and trades(records) >= 100

    async with feed:
        records = await collect(feed, recovered)

    assert feed.stats.reconnects == {"watchdog": 1}
    assert_perpetual(records)
    assert_tape(sim.history, records)
