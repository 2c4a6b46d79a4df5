"""The simulator's Kraken WebSocket v2 through the real market feed and Kraken venue.

The synthetic market runs from a busy afternoon at 10× wall-clock pace. What the feed hands out
is compared with the synthetic market itself: trades with the tape of ``BTCUSDT`` (the tape
``BTC/USD`` trades), books and tickers with the book the tape's orders leave, rendered by the
Binance REST depth of the same state. Every book checksum is verified by the Kraken parser, so a
wrong one shows up as a reconnect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import websockets
from aiohttp import web

from streaming.ingest import Backoff, MarketFeed
from streaming.ingest.stats import UnfilledGap
from streaming.recordings import read_recording
from streaming.records import BookTicker, DepthSnapshot, DepthUpdate, MarketRecord, Trade
from streaming.simulator import synthetic_book
from streaming.simulator.clock import market_clock
from streaming.simulator.history import MarketHistory
from streaming.simulator.kraken import (
    KrakenStreams,
    book_checksum,
    pair_of_symbol,
    symbol_of_pair,
)
from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.tape import DayTape, day_of_us
from streaming.venues import venue
from streaming.venues.kraken import KrakenBook, KrakenV1FrameParser
from streaming.venues.kraken.venue import KrakenSpot
from tests.conftest import SHARED_DATA

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(30)]
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
SPEED = 10.0
LISTING = dt.date(2024, 1, 1)
PAIR, SYMBOL = "BTC/USD", "BTCUSDT"
ALL_CHANNELS = ("trade", "ticker", "book")
E8 = Decimal(100_000_000)


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=7)  # one per module: its day tapes are cached across tests


class Served:
    """A KrakenStreams mounted on its own aiohttp application, on a free local port."""

    def __init__(self, streams: KrakenStreams, runner: web.AppRunner) -> None:
        self.streams = streams
        self.url = streams.ws_url(f"ws://127.0.0.1:{runner.addresses[0][1]}")


async def serve(market: SyntheticMarket, clock_ns: Callable[[], int]) -> AsyncIterator[Served]:
    history = MarketHistory(market, LISTING)
    streams = KrakenStreams(market, clock_ns, ["BTCUSDT", "ETHUSDT"], history=history)
    app = web.Application()
    app.add_routes(streams.routes())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        await streams.start()
        yield Served(streams, runner)
    finally:
        await streams.stop()
        await runner.cleanup()


@pytest.fixture
async def kraken(market: SyntheticMarket) -> AsyncIterator[Served]:
    async for served in serve(market, market_clock(BUSY_AFTERNOON, speed=SPEED)):
        yield served


def feed_for(
    kraken: Served, tmp_path: Path, channels=ALL_CHANNELS, depth: int = 10, **options
) -> MarketFeed:
    options.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.2))
    kraken_venue = venue("kraken") if depth == 10 else KrakenSpot(book_depth=depth)
    return MarketFeed(
        kraken.url, "", [PAIR], venue=kraken_venue, channels=channels,
        dead_letter_path=tmp_path / "dead.jsonl", **options,
    )  # fmt: skip


async def collect(
    feed: MarketFeed, until: Callable[[list[MarketRecord], MarketFeed], bool], limit_s: float = 8
) -> list[MarketRecord]:
    records: list[MarketRecord] = []
    async with asyncio.timeout(limit_s):
        async for record in feed:
            records.append(record)
            if until(records, feed):
                return records
    raise AssertionError("the feed ended")


def count(kind: type, at_least: int) -> Callable[[list[MarketRecord], MarketFeed], bool]:
    return lambda records, _: sum(isinstance(r, kind) for r in records) >= at_least


def trades_of(records: list[MarketRecord]) -> list[Trade]:
    return [r for r in records if isinstance(r, Trade)]


def decimals(text: str) -> int:
    return len(text.partition(".")[2])


def assert_the_tape(
    market: SyntheticMarket, trades: list[Trade], skipped: Sequence[UnfilledGap] = ()
) -> None:
    """``trades`` are BTCUSDT's synthetic trades, one after the other but for the ``skipped``
    ones, each exactly."""
    assert trades
    ids = [t.trade_id for t in trades]
    gaps = [i for gap in skipped for i in range(gap.first_id, gap.last_id + 1)]
    assert sorted(ids + gaps) == list(range(ids[0], ids[0] + len(ids) + len(gaps)))
    for trade in trades:
        tape = market.tape(SYMBOL, day_of_us(trade.trade_ns // 1000))
        i = trade.trade_id - tape.first_trade_id
        tick, step = tape.instrument.tick_e8, tape.instrument.step_e8
        assert Decimal(trade.price) * E8 == int(tape.trade_price_ticks[i]) * tick
        assert Decimal(trade.quantity) * E8 == int(tape.trade_qty_steps[i]) * step
        assert trade.is_buyer_maker == bool(tape.trade_buyer_maker[i])
        assert trade.trade_ns == int(tape.trade_time_us[i]) * 1000
        assert (decimals(trade.price), decimals(trade.quantity)) == (1, 8)  # the pair's
        assert (trade.venue, trade.symbol) == ("KRAKEN", PAIR)


NO_HISTORY = "the venue serves no trade history"


def assert_joined_up_or_skipped(feed: MarketFeed) -> None:
    """After a reconnect the trade snapshot (the last 50 trades) overlaps what was released, or
    else (a taker order with more fills than 50 on the way) the feed recorded the trades it
    could not have: Kraken's venue has no REST trade history to fill them from."""
    stats = feed.stats
    assert stats.trades_duplicate > 0 or [g.reason for g in stats.unfilled_gaps] == [NO_HISTORY]
    assert stats.trades_pending == 0


def state_at(market: SyntheticMarket, event_ns: int) -> synthetic_book.BookState:
    """The synthetic book after the last taker order at ``event_ns``."""
    time_us = event_ns // 1000
    tape: DayTape = market.tape(SYMBOL, day_of_us(time_us))
    order = int(np.searchsorted(tape.order_time_us, time_us, side="right")) - 1
    assert order >= 0 and int(tape.order_time_us[order]) == time_us
    return synthetic_book.state_after(tape, order)


def binance_depth(market: SyntheticMarket, state: synthetic_book.BookState, depth: int):
    """The same book as Binance's REST depth renders it: (bids, asks) as Decimals."""
    body = json.loads(synthetic_book.snapshot_json(market.instrument(SYMBOL), state, depth))
    return tuple([(Decimal(p), Decimal(q)) for p, q in body[side]] for side in ("bids", "asks"))


def decimal_levels(levels: list[tuple[str, str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in levels]


def last_of_each_time(records: list) -> list:
    """The last record of each event time (several taker orders may share a microsecond)."""
    following = [*records[1:], None]
    return [r for r, after in zip(records, following, strict=True)
            if after is None or after.event_ns != r.event_ns]  # fmt: skip


def test_the_checksum_is_the_one_kraken_sent_on_every_recorded_update() -> None:
    """The simulator's checksum over real Kraken books (the 2021 v1 capture: the same CRC32 of
    the same digits) equals the one Kraken sent with each of its updates."""
    path = SHARED_DATA / "kraken" / "cryptofeed_kraken_20210417.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"the Kraken recording is absent ({path}: ../shared/data is absent)")
    parser = KrakenV1FrameParser()
    books: dict[str, KrakenBook] = {}
    compared = 0
    for frame in read_recording(path):
        if frame.is_rest:
            continue
        parsed = parser.parse(frame.payload, frame.receive_ns)
        for record in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(record, DepthSnapshot):
                books[record.symbol] = KrakenBook(record.symbol, 1000)  # book-1000
                books[record.symbol].load(record.bids, record.asks)
            elif isinstance(record, DepthUpdate):
                book = books[record.symbol]
                book.apply(record.bids, record.asks)
                assert book_checksum(book.bids(10), book.asks(10)) == record.checksum
                compared += 1
    assert compared > 4000


def test_pairs_name_the_synthetic_symbols() -> None:
    assert symbol_of_pair("BTC/USD") == "BTCUSDT"
    assert symbol_of_pair("ETH/BTC") == "ETHBTC"
    assert symbol_of_pair("btc-usd") is None
    assert [pair_of_symbol(s) for s in ("BTCUSDT", "ETHBTC")] == ["BTC/USD", "ETH/BTC"]
    assert pair_of_symbol("FOOBAR") is None


async def test_trades_are_the_tape_of_btcusdt(
    kraken: Served, market: SyntheticMarket, tmp_path: Path
) -> None:
    async with feed_for(kraken, tmp_path, channels=("trade",)) as feed:
        subscribed_us = kraken.streams.clock_ns() // 1000
        records = await collect(feed, count(Trade, 200))

    trades = trades_of(records)
    assert_the_tape(market, trades)
    snapshot = [t for t in trades if t.trade_ns // 1000 <= subscribed_us]
    assert len(snapshot) >= 50  # the snapshot's last 50, then what traded since
    assert feed.stats.frames_dead_lettered == 0 and not feed.stats.reconnects
    assert feed.stats.trades_duplicate == 0


async def test_trades_run_on_across_midnight(market: SyntheticMarket, tmp_path: Path) -> None:
    before_midnight = dt.datetime(2024, 3, 1, 23, 59, 55, tzinfo=dt.UTC)
    next_day = dt.date(2024, 3, 2)

    def into_the_next_day(records: list[MarketRecord], _: MarketFeed) -> bool:
        return sum(day_of_us(t.trade_ns // 1000) == next_day for t in trades_of(records)) >= 10

    async for kraken in serve(market, market_clock(before_midnight, speed=SPEED)):
        async with feed_for(kraken, tmp_path, channels=("trade", "book")) as feed:
            records = await collect(feed, into_the_next_day)

    trades = trades_of(records)
    assert_the_tape(market, trades)
    assert day_of_us(trades[0].trade_ns // 1000) == next_day - dt.timedelta(days=1)
    assert not feed.stats.reconnects  # the book's checksums held across the day's change


@pytest.mark.parametrize("depth", [10, 100])
async def test_book_checksums_verify_and_the_book_is_the_synthetic_one(
    kraken: Served, market: SyntheticMarket, tmp_path: Path, depth: int
) -> None:
    async with feed_for(kraken, tmp_path, channels=("book", "ticker"), depth=depth) as feed:
        records = await collect(feed, count(DepthUpdate, 150))

    assert not feed.stats.reconnects  # every checksum verified
    assert feed.stats.frames_dead_lettered == 0
    snapshot = records.index(next(r for r in records if isinstance(r, DepthSnapshot)))
    first = records[snapshot]
    assert isinstance(first, DepthSnapshot) and first.checksum is not None
    assert len(first.bids) == len(first.asks) == depth  # the subscribed depth
    book = KrakenBook(PAIR, depth)
    book.load(first.bids, first.asks)
    updates = [r for r in records[snapshot:] if isinstance(r, DepthUpdate)]
    final = {id(u) for u in last_of_each_time(updates)}
    for update in updates:
        assert update.checksum is not None and update.final_update_id == book.update_id + 1
        book.apply(update.bids, update.asks)
        if id(update) in final:
            bids, asks = binance_depth(market, state_at(market, update.event_ns), depth)
            assert decimal_levels(book.bids()) == bids
            assert decimal_levels(book.asks()) == asks
    tickers = [r for r in records if isinstance(r, BookTicker)]
    assert tickers
    for ticker in last_of_each_time(tickers)[1:]:  # the first is the snapshot's
        assert ticker.event_ns is not None
        bids, asks = binance_depth(market, state_at(market, ticker.event_ns), 1)
        best = (Decimal(ticker.bid_price), Decimal(ticker.bid_qty))
        assert [best, (Decimal(ticker.ask_price), Decimal(ticker.ask_qty))] == [bids[0], asks[0]]


async def test_a_wrong_checksum_makes_the_feed_resubscribe_and_the_book_recovers(
    kraken: Served, market: SyntheticMarket, tmp_path: Path
) -> None:
    def recovered(records: list[MarketRecord], feed: MarketFeed) -> bool:
        if len(records) == 30:
            kraken.streams.corrupt_checksums(1)
        snapshots = [i for i, r in enumerate(records) if isinstance(r, DepthSnapshot)]
        after = records[snapshots[-1] :] if len(snapshots) > 1 else []
        return sum(isinstance(r, DepthUpdate) for r in after) >= 40

    async with feed_for(kraken, tmp_path) as feed:
        records = await collect(feed, recovered)

    assert kraken.streams.feed.checksums_corrupted == 1
    assert feed.stats.reconnects == {"checksum_mismatch": 1}
    assert feed.stats.connections_opened == 2
    assert sum(isinstance(r, DepthSnapshot) for r in records) == 2
    assert feed.stats.frames_dead_lettered == 0
    assert_the_tape(market, trades_of(records), feed.stats.unfilled_gaps)
    assert_joined_up_or_skipped(feed)


async def test_a_dropped_connection_is_recovered(
    kraken: Served, market: SyntheticMarket, tmp_path: Path
) -> None:
    kraken.streams.faults.update(drop_after_messages=60)

    def recovered(records: list[MarketRecord], feed: MarketFeed) -> bool:
        if feed.stats.reconnects["dropped"]:
            kraken.streams.faults.clear()  # the plan applies to every connection: one drop
        return feed.stats.connections_opened == 2 and count(Trade, 200)(records, feed)

    async with feed_for(kraken, tmp_path) as feed:
        records = await collect(feed, recovered)

    assert feed.stats.reconnects == {"dropped": 1}
    assert sum(isinstance(r, DepthSnapshot) for r in records) == 2
    assert_the_tape(market, trades_of(records), feed.stats.unfilled_gaps)
    assert_joined_up_or_skipped(feed)


async def test_a_stalled_connection_trips_the_watchdog(
    kraken: Served, market: SyntheticMarket, tmp_path: Path
) -> None:
    faults = kraken.streams.faults
    faults.update(stall_after_messages=40, stall_seconds=3.0)
    stalls: list[int] = []

    def recovered(records: list[MarketRecord], feed: MarketFeed) -> bool:
        if feed.stats.reconnects["watchdog"] and not stalls:
            stalls.append(faults.applied["stalled"])
            faults.clear()  # a stall is once per connection: keep the next one healthy
        return feed.stats.connections_opened == 2 and count(Trade, 150)(records, feed)

    async with feed_for(kraken, tmp_path, watchdog_s=1.0) as feed:
        records = await collect(feed, recovered)

    assert stalls == [1]
    assert feed.stats.reconnects == {"watchdog": 1}  # no heartbeat either while stalled
    # 2 s of wall time are 20 s of market: more trades than the next trade snapshot's 50
    assert_the_tape(market, trades_of(records), feed.stats.unfilled_gaps)
    assert [g.reason for g in feed.stats.unfilled_gaps] == [NO_HISTORY]


async def test_answers_snapshots_and_heartbeats_as_kraken_sends_them(
    market: SyntheticMarket,
) -> None:
    frozen_ns = int(BUSY_AFTERNOON.timestamp()) * 1_000_000_000  # nothing trades: only heartbeats
    async for kraken in serve(market, lambda: frozen_ns):
        async with websockets.connect(kraken.url) as ws:
            status = json.loads(await ws.recv())
            with pytest.raises(TimeoutError):  # no heartbeat before a subscription
                await asyncio.wait_for(ws.recv(), 1.3)
            await ws.send(
                json.dumps({"method": "subscribe", "req_id": 5, "params": {
                    "channel": "book", "symbol": ["BTC/USD", "DOGE/EUR"], "depth": 25}})
            )  # fmt: skip
            ack, snapshot, refused = [
                json.loads(await ws.recv(), parse_float=Decimal) for _ in range(3)
            ]
            heartbeat = json.loads(await asyncio.wait_for(ws.recv(), 1.5))
            await ws.send(json.dumps({"method": "subscribe", "params": {
                "channel": "book", "symbol": ["BTC/USD"]}}))  # fmt: skip
            again = json.loads(await ws.recv())
            await ws.send(json.dumps({"method": "ping", "req_id": 9}))
            pong = json.loads(await ws.recv())
            await ws.send(json.dumps({"method": "unsubscribe", "params": {
                "channel": "book", "symbol": ["BTC/USD"]}}))  # fmt: skip
            unsubscribed = json.loads(await ws.recv())
            with pytest.raises(TimeoutError):  # no subscription left: no heartbeat
                await asyncio.wait_for(ws.recv(), 1.3)

    assert status["channel"] == "status" and status["data"][0]["system"] == "online"
    assert ack["result"] == {"channel": "book", "depth": 25, "snapshot": True, "symbol": PAIR}
    assert (ack["method"], ack["success"], ack["req_id"]) == ("subscribe", True, 5)
    assert {"time_in", "time_out"} <= ack.keys()
    data = snapshot["data"][0]
    assert (snapshot["channel"], snapshot["type"], data["symbol"]) == ("book", "snapshot", PAIR)
    assert len(data["bids"]) == len(data["asks"]) == 25
    bids, asks = binance_depth(market, state_at_or_before(market, frozen_ns), 25)
    assert [(b["price"], b["qty"]) for b in data["bids"]] == bids
    assert [(a["price"], a["qty"]) for a in data["asks"]] == asks
    assert (refused["success"], refused["symbol"]) == (False, "DOGE/EUR")
    assert refused["error"] == "Currency pair not supported"
    assert heartbeat == {"channel": "heartbeat"}
    assert (again["success"], again["error"]) == (False, "Already subscribed")
    assert (pong["method"], pong["req_id"]) == ("pong", 9)
    assert unsubscribed["result"] == {"channel": "book", "depth": 25, "symbol": PAIR}
    assert (unsubscribed["method"], unsubscribed["success"]) == ("unsubscribe", True)


def state_at_or_before(market: SyntheticMarket, time_ns: int) -> synthetic_book.BookState:
    tape = market.tape(SYMBOL, day_of_us(time_ns // 1000))
    order = int(np.searchsorted(tape.order_time_us, time_ns // 1000, side="right")) - 1
    return synthetic_book.state_after(tape, order)
