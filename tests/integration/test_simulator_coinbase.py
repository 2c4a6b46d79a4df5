"""The simulator's Coinbase Advanced Trade WebSocket, through the real feed and a raw client.

The synthetic market runs from a busy afternoon at 10× wall-clock pace. Every tape the feed
releases for a Coinbase product is compared with the synthetic market's own trades of the symbol
it maps to (``BTC-USD`` is ``BTCUSDT``), read from the simulator's history, their times later by
Coinbase's planted delay (``streaming/simulator/lead_lag.py``); every ticker with the synthetic
book after each taker order. Faults: a lost sequence number, dropped connections and a
stall, each recovered with the trades contiguous.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from streaming.ingest import Backoff, MarketFeed
from streaming.recordings import read_recording
from streaming.records import BookTicker, DepthSnapshot, DepthUpdate, MarketRecord, Trade
from streaming.simulator.clock import market_clock
from streaming.simulator.coinbase import FAULTS_PATH
from streaming.simulator.coinbase.protocol import BOOK_DEPTH, TRADES_SNAPSHOT
from streaming.simulator.lead_lag import DEFAULT_VENUE_DELAYS_S
from streaming.simulator.server import SimulatorServer
from streaming.simulator.synthetic_book import BookState, state_after
from streaming.simulator.tape import DayTape, day_of_us
from streaming.venues import venue
from streaming.venues.coinbase import Books, CoinbaseFrameParser, rfc3339_ns

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(60)]
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
SPEED = 10.0
PRODUCTS = {"BTC-USD": "BTCUSDT", "ETH-USD": "ETHUSDT"}
COINBASE_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?").fullmatch
COINBASE_DELAY = dt.timedelta(seconds=DEFAULT_VENUE_DELAYS_S["coinbase"])
TradeKey = tuple[int, Decimal, Decimal, bool, int]
Top = tuple[Decimal, Decimal, Decimal, Decimal]


def simulator(start: dt.datetime = BUSY_AFTERNOON, speed: float = SPEED) -> SimulatorServer:
    """The simulator whose Coinbase shows the tape from ``start`` on: Coinbase is its delay
    behind the clock, so the clock starts that much later."""
    clock = market_clock(start + COINBASE_DELAY, speed=speed)
    return SimulatorServer(symbols=list(PRODUCTS.values()), clock_ns=clock)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with simulator() as server:
        yield server


def feed_for(sim: SimulatorServer, tmp_path: Path, **options: Any) -> MarketFeed:
    options.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.2))
    return MarketFeed(
        sim.coinbase_ws_url,
        sim.http_url,
        list(PRODUCTS),
        venue=venue("coinbase"),
        dead_letter_path=tmp_path / "dead.jsonl",
        **options,
    )


async def collect(
    feed: MarketFeed,
    trades: int,
    until: Callable[[MarketFeed, list[MarketRecord]], bool] = lambda *_: True,
) -> list[MarketRecord]:
    """Records until every product has ``trades`` more trades and ``until(feed, records)``
    holds."""
    records: list[MarketRecord] = []
    counts = dict.fromkeys(PRODUCTS, 0)
    async with asyncio.timeout(20):
        async for record in feed:
            records.append(record)
            if type(record) is Trade:
                counts[record.symbol] += 1
                if min(counts.values()) >= trades and until(feed, records):
                    return records
    raise AssertionError("the feed ended")


def tape_of(records: list[MarketRecord], product: str) -> list[TradeKey]:
    trades = [r for r in records if type(r) is Trade and r.symbol == product]
    for trade in trades:
        assert (trade.venue, trade.market) == ("COINBASE", "spot")
        assert COINBASE_DECIMAL(trade.price) and COINBASE_DECIMAL(trade.quantity), trade
    return [
        (t.trade_id, Decimal(t.price), Decimal(t.quantity), t.is_buyer_maker, t.trade_ns)
        for t in trades
    ]


async def synthetic_tape(sim: SimulatorServer, symbol: str, first_id: int, count: int) -> list:
    """The synthetic market's trades ``first_id..`` of ``symbol``, as the simulator's history
    (what its Binance REST serves) holds them, timed as Coinbase shows them: its delay later."""
    history, now_us = sim.history, sim.clock_ns() // 1000
    delay_us = sim.venue_delays_us["coinbase"]
    frame = await asyncio.to_thread(
        history.locked, history.trades_from_id, symbol, first_id, count, now_us
    )
    return [
        (
            row["id"],
            Decimal(row["price_e8"]).scaleb(-8),
            Decimal(row["qty_e8"]).scaleb(-8),
            row["is_buyer_maker"],
            (row["time_us"] + delay_us) * 1000,
        )
        for row in frame.iter_rows(named=True)
    ]


async def assert_synthetic_tape(sim: SimulatorServer, records: list[MarketRecord]) -> None:
    """Each product's trades are the synthetic tape of its symbol, ids contiguous."""
    for product, symbol in PRODUCTS.items():
        tape = tape_of(records, product)
        assert tape, f"no {product} trades"
        ids = [t[0] for t in tape]
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{product} ids are not contiguous"
        assert tape == await synthetic_tape(sim, symbol, ids[0], len(ids))


def assert_nothing_skipped(feed: MarketFeed) -> None:
    stats = feed.stats
    assert stats.unfilled_gaps == [] and stats.trades_skipped == 0
    assert stats.trades_from_stream == stats.trades_released + stats.trades_pending
    assert stats.frames_dead_lettered == 0


async def test_trades_are_the_synthetic_tape_of_the_mapped_symbol(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    async with feed_for(sim, tmp_path) as feed:
        records = await collect(feed, 2 * TRADES_SNAPSHOT + 300)

    await assert_synthetic_tape(sim, records)
    assert feed.stats.connections_opened == 1 and not feed.stats.reconnects
    assert_nothing_skipped(feed)
    first = next(r for r in records if type(r) is Trade)
    assert first.event_ns is not None and first.trade_ns < first.event_ns  # the snapshot's


# -- tickers and the book -------------------------------------------------------------------------
def top_of(tape: DayTape, state: BookState) -> Top:
    """The synthetic book's best bid and ask (price, size) as decimals."""
    tick, step = tape.instrument.tick_e8, tape.instrument.step_e8
    return (
        Decimal(state.bid_ticks * tick).scaleb(-8),
        Decimal(state.bid_steps * step).scaleb(-8),
        Decimal(state.ask_ticks * tick).scaleb(-8),
        Decimal(state.ask_steps * step).scaleb(-8),
    )


def ticker_top(ticker: BookTicker) -> Top:
    return (
        Decimal(ticker.bid_price),
        Decimal(ticker.bid_qty),
        Decimal(ticker.ask_price),
        Decimal(ticker.ask_qty),
    )


def first_order_of(tape: DayTape, ticker: BookTicker) -> int:
    """The order whose book the ticker shows: the latest before it with that book."""
    assert ticker.event_ns is not None
    last = int(np.searchsorted(tape.order_time_us, ticker.event_ns // 1000, side="right")) - 1
    for order in range(last, max(-1, last - 5000), -1):
        if top_of(tape, state_after(tape, order)) == ticker_top(ticker):
            return order
    raise AssertionError(f"{ticker} shows no book of the synthetic market")


async def test_a_ticker_follows_every_order_and_the_book_is_never_crossed(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    async with feed_for(sim, tmp_path) as feed:
        records = await collect(feed, 2 * TRADES_SNAPSHOT + 200)

    books, checked = Books(), 0
    for record in records:
        if type(record) is DepthSnapshot or type(record) is DepthUpdate:
            assert not books.apply(record).is_crossed(), record
        elif type(record) is BookTicker:
            book = books.by_symbol[record.symbol]  # level2 is subscribed before ticker
            assert book.best_bid() == (record.bid_price, record.bid_qty)
            assert book.best_ask() == (record.ask_price, record.ask_qty)
            checked += 1
    snapshots = [r for r in records if type(r) is DepthSnapshot]
    assert sorted(s.symbol for s in snapshots) == sorted(PRODUCTS)
    assert all(len(s.bids) == len(s.asks) == BOOK_DEPTH for s in snapshots)
    assert checked > 100
    for product, symbol in PRODUCTS.items():
        tickers = [r for r in records if type(r) is BookTicker and r.symbol == product]
        assert tickers[0].event_ns is not None
        day = day_of_us(tickers[0].event_ns // 1000)
        tape = await asyncio.to_thread(sim.history.locked, sim.market.tape, symbol, day)
        first = first_order_of(tape, tickers[0])  # the snapshot: the book when it was taken
        expected = [top_of(tape, state_after(tape, first + k)) for k in range(len(tickers))]
        assert [ticker_top(t) for t in tickers] == expected  # then one ticker per order


# -- faults ---------------------------------------------------------------------------------------
async def test_a_skipped_sequence_number_resubscribes_and_the_snapshot_covers_the_gap(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.coinbase.set_faults(skip_sequence_after_messages=300)

    async with feed_for(sim, tmp_path) as feed:
        records = await collect(feed, 300, lambda f, _: f.stats.connections_opened == 2)
        records += await collect(feed, 200)

    assert sim.coinbase.faults.applied["sequence_skipped"] == 1
    assert feed.stats.reconnects == {"sequence_gap": 1}
    await assert_synthetic_tape(sim, records)
    assert feed.stats.trades_duplicate > 0  # the new snapshot overlapped what had come
    assert_nothing_skipped(feed)


async def test_dropped_connections_are_recovered_from_the_trades_snapshot(tmp_path: Path) -> None:
    # At twice the wall clock's pace (20 to 60 trades a second per product), the trades a
    # reconnect misses fit in the 50-trade snapshot unless the reconnect takes most of a second;
    # at 10× a loaded machine's reconnect once missed 230 (a full test run).
    async with simulator(speed=2.0) as sim:
        sim.set_faults(drop_after_messages=200)
        async with feed_for(sim, tmp_path) as feed:
            records = await collect(feed, 150, lambda f, _: f.stats.reconnects["dropped"] >= 2)

        assert sim.faults.applied["dropped"] >= 2
        assert feed.stats.connections_opened == feed.stats.reconnects["dropped"] + 1
        assert sim.coinbase.connections_total == feed.stats.connections_opened
        await assert_synthetic_tape(sim, records)
        assert_nothing_skipped(feed)


async def test_a_stalled_stream_trips_the_watchdog_and_the_snapshot_covers_the_gap(
    tmp_path: Path,
) -> None:
    # At the wall clock's pace, a minute when both products trade some 10 to 30 times a second:
    # the trades of the watchdog's second fit in one trades snapshot, and more follow soon.
    async with simulator(start=BUSY_AFTERNOON.replace(minute=3, second=30), speed=1.0) as sim:
        sim.set_faults(stall_after_messages=20, stall_seconds=5)

        def recovered(feed: MarketFeed, _: list[MarketRecord]) -> bool:
            if feed.stats.reconnects["watchdog"]:
                sim.clear_faults()  # a stall is once per connection: keep the next one healthy
            return feed.stats.connections_opened == 2

        async with feed_for(sim, tmp_path, watchdog_s=1.0) as feed:
            records = await collect(feed, TRADES_SNAPSHOT, recovered)
            records += await collect(feed, 40)  # past the snapshot, from its updates

        assert feed.stats.reconnects == {"watchdog": 1}
        assert feed.stats.trades_duplicate > 0  # the new snapshot overlapped what had come
        await assert_synthetic_tape(sim, records)
        assert_nothing_skipped(feed)


async def test_a_connection_carries_on_across_midnight(tmp_path: Path) -> None:
    midnight = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
    async with simulator(start=midnight - dt.timedelta(seconds=60), speed=50.0) as sim:
        first_of_day = sim.market.first_trade_id("BTCUSDT", midnight.date())

        def into_the_day(_: MarketFeed, records: list[MarketRecord]) -> bool:
            last = records[-1]
            return (
                type(last) is Trade
                and last.symbol == "BTC-USD"
                and last.trade_id > first_of_day + 100
            )

        async with feed_for(sim, tmp_path) as feed:
            records = await collect(feed, TRADES_SNAPSHOT, into_the_day)

        first = next(r for r in records if type(r) is Trade)
        assert first.event_ns is not None and first.event_ns < midnight.timestamp() * 1e9
        ids = [t[0] for t in tape_of(records, "BTC-USD")]
        assert ids[0] < first_of_day < ids[-1]  # subscribed the day before, streamed into the next
        await assert_synthetic_tape(sim, records)
        assert feed.stats.connections_opened == 1
        assert_nothing_skipped(feed)


# -- the protocol as a client sees it -------------------------------------------------------------
def subscribe(channel: str, *products: str, kind: str = "subscribe") -> str:
    message: dict[str, Any] = {"type": kind, "channel": channel}
    if products:
        message["product_ids"] = list(products)
    return json.dumps(message)


async def read_for(ws: websockets.ClientConnection, seconds: float) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            messages.append(str(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return messages


async def test_the_protocol_as_a_client_sees_it(sim: SimulatorServer) -> None:
    async with websockets.connect(sim.coinbase_ws_url, max_size=1 << 24, max_queue=None) as ws:
        for message in (
            subscribe("market_trades", "BTC-USD"),
            subscribe("level2", "BTC-USD"),
            subscribe("ticker", "BTC-USD"),
            subscribe("heartbeats"),
            subscribe("ticker", "DOGE-USD"),
            subscribe("candles", "BTC-USD"),
        ):
            await ws.send(message)
        texts = await read_for(ws, 1.2)
        await ws.send(subscribe("ticker", "BTC-USD", kind="unsubscribe"))
        texts += await read_for(ws, 1.2)

    messages = [json.loads(text) for text in texts]
    errors = [m for m in messages if m.get("type") == "error"]
    frames = [m for m in messages if m.get("type") != "error"]
    assert [e["reason"] for e in errors] == [
        "DOGE-USD is not a valid product",
        "channel 'candles' is not one of level2, market_trades, ticker, heartbeats",
    ]
    assert all(list(e) == ["type", "message", "reason"] for e in errors)
    assert all(list(f) == ["channel", "timestamp", "sequence_num", "events"] for f in frames)
    assert [f["sequence_num"] for f in frames] == list(range(len(frames)))
    parser = CoinbaseFrameParser()  # the venue's own parser reads every frame
    for text in texts:
        if '"type":"error"' not in text:
            parser.parse(text.encode(), time.time_ns())

    by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for frame in frames:
        by_channel[frame["channel"]].append(frame)
    assert [f["events"][0]["subscriptions"] for f in by_channel["subscriptions"]] == [
        {"market_trades": ["BTC-USD"]},
        {"level2": ["BTC-USD"], "market_trades": ["BTC-USD"]},
        {"level2": ["BTC-USD"], "market_trades": ["BTC-USD"], "ticker": ["BTC-USD"]},
        {
            "heartbeats": ["heartbeats"],
            "level2": ["BTC-USD"],
            "market_trades": ["BTC-USD"],
            "ticker": ["BTC-USD"],
        },
        {"heartbeats": ["heartbeats"], "level2": ["BTC-USD"], "market_trades": ["BTC-USD"]},
    ]
    unsubscribed_at = by_channel["subscriptions"][-1]["sequence_num"]
    assert by_channel["ticker"] and by_channel["ticker"][-1]["sequence_num"] < unsubscribed_at
    assert frames[0]["channel"] == "market_trades"

    # market_trades: a snapshot of the last trades, then updates carrying on from it
    events = [f["events"][0] for f in by_channel["market_trades"]]
    assert [e["type"] for e in events] == ["snapshot"] + ["update"] * (len(events) - 1)
    batches = [[int(t["trade_id"]) for t in e["trades"]] for e in events]
    assert len(batches[0]) == TRADES_SNAPSHOT and len(batches) > 5
    assert all(b == sorted(b, reverse=True) for b in batches)  # newest first
    ids = sorted(i for b in batches for i in b)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    for frame in by_channel["market_trades"]:  # times are RFC 3339, exact to the synthetic µs
        for trade in frame["events"][0]["trades"]:
            assert rfc3339_ns(trade["time"]) % 1000 == 0
            assert rfc3339_ns(trade["time"]) <= rfc3339_ns(frame["timestamp"])

    # level2: the book, then its changes
    kinds = [f["events"][0]["type"] for f in by_channel["l2_data"]]
    assert kinds[0] == "snapshot" and set(kinds[1:]) == {"update"}

    # heartbeats: one a second, counted
    beats = [f["events"][0]["heartbeat_counter"] for f in by_channel["heartbeats"]]
    assert len(beats) >= 2 and beats == list(range(beats[0], beats[0] + len(beats)))


async def test_the_coinbase_fault_plan_is_served_over_http(sim: SimulatorServer) -> None:
    async with httpx.AsyncClient(base_url=sim.http_url) as client:
        set_plan = await client.post(FAULTS_PATH, json={"skip_sequence_after_messages": 50})
        unknown = await client.post(FAULTS_PATH, json={"skip_everything": 1})
        negative = await client.post(FAULTS_PATH, json={"skip_sequence_next": -1})
        seen = await client.get(FAULTS_PATH)
        cleared = await client.delete(FAULTS_PATH)

    assert set_plan.status_code == 200
    assert set_plan.json()["plan"]["skip_sequence_after_messages"] == 50
    assert (unknown.status_code, negative.status_code) == (400, 400)
    assert seen.json()["plan"] == {"skip_sequence_after_messages": 50, "skip_sequence_next": 1}
    assert cleared.json()["plan"]["skip_sequence_after_messages"] is None


# -- the shape of the real thing ------------------------------------------------------------------
DECIMALS = re.compile(r"-?[0-9]+(\.[0-9]+)?").fullmatch
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(\.[0-9]{1,9})?Z").fullmatch
ENUMS = {"BUY": "side", "SELL": "side", "bid": "book side", "offer": "book side"}
ENUMS |= {name: name for name in ("snapshot", "update", "ticker", *PRODUCTS)}
GO_TIME = re.compile(
    r"[0-9-]{10} [0-9:]{8}(\.[0-9]{1,9})? \+0000 UTC m=\+[0-9]+\.[0-9]{9}"
).fullmatch


def shape(value: object) -> object:
    """A JSON value's structure: keys in order, each string's kind, each list's element shapes."""
    if isinstance(value, dict):
        return tuple((key, shape(item)) for key, item in value.items())
    if isinstance(value, list):
        return frozenset(shape(item) for item in value)
    if isinstance(value, str):
        for kind, matches in (("decimal", DECIMALS), ("time", RFC3339), ("go_time", GO_TIME)):
            if matches(value):
                return kind
        return ENUMS.get(value, "text")
    return type(value).__name__


def shapes_by_kind(texts: list[str]) -> dict[tuple[str, str], set[object]]:
    shapes: dict[tuple[str, str], set[object]] = defaultdict(set)
    for text in texts:
        frame = json.loads(text)
        if frame.get("channel") in ("market_trades", "ticker", "l2_data", "heartbeats"):
            kind = frame["events"][0].get("type", "")
            for event in frame["events"]:  # a product's events only: products differ in name
                shapes[frame["channel"], kind].add(shape({**frame, "events": [event]}))
    return shapes


async def test_frames_have_the_shape_of_the_real_coinbase_recording(
    sim: SimulatorServer, shared_data: Path
) -> None:
    recording = shared_data / "coinbase" / "cryptofeed_coinbase_20260809.jsonl.gz"
    if not recording.is_file():
        pytest.skip(f"{recording} absent")
    real = [f.payload.decode() for f in read_recording(recording) if not f.is_rest]
    async with websockets.connect(sim.coinbase_ws_url, max_size=1 << 24, max_queue=None) as ws:
        for channel in ("market_trades", "ticker", "level2", "heartbeats"):
            await ws.send(subscribe(channel, *PRODUCTS))
        simulated = await read_for(ws, 1.5)

    expected, seen = shapes_by_kind(real), shapes_by_kind(simulated)
    assert set(seen) == set(expected) == {
        ("market_trades", "snapshot"), ("market_trades", "update"), ("ticker", "snapshot"),
        ("ticker", "update"), ("l2_data", "snapshot"), ("l2_data", "update"), ("heartbeats", ""),
    }  # fmt: skip
    for kind, shapes in seen.items():
        assert shapes <= expected[kind], kind
