"""The market feed against the simulator's real Binance protocol, with faults injected.

The synthetic market runs from a busy afternoon at 10× wall-clock pace, so a few seconds carry
hundreds of trades. Every released tape is compared with the exchange's own trades (the
simulator's history, read directly), so "contiguous" also means "the right trades".
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from streaming.ingest import (
    Backoff,
    HandshakeRejected,
    MarketFeed,
    open_stream,
    read_dead_letters,
)
from streaming.simulator.binance.rest import trades_json
from streaming.simulator.clock import market_clock
from streaming.simulator.server import SimulatorServer
from streaming.venues.binance import BinanceRecord, BookTicker, Trade, parse_stream_frame
from streaming.venues.binance.client import AsyncBinanceRestClient, RetryPolicy
from streaming.venues.binance.history import fetch_trades
from streaming.venues.binance.venue import combined_stream_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
SPEED = 10.0
MS_TO_NS = 1_000_000
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
TradeKey = tuple[int, str, str, bool, int]


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    clock = market_clock(BUSY_AFTERNOON, speed=SPEED)
    async with SimulatorServer(symbols=["BTCUSDT", "ETHUSDT"], clock_ns=clock) as server:
        yield server


def feed_for(sim: SimulatorServer, tmp_path: Path, symbols=("BTCUSDT",), **options) -> MarketFeed:
    options.setdefault("backoff", Backoff(initial_s=0.01, max_s=0.2))
    options.setdefault("rest_retry", FAST_RETRY)
    return MarketFeed(
        sim.ws_url, sim.http_url, symbols, dead_letter_path=tmp_path / "dead.jsonl", **options
    )


async def collect(
    feed: MarketFeed, trades: int, until: Callable[[MarketFeed], bool] = lambda _: True
) -> list[BinanceRecord]:
    """Records until ``trades`` trades were released and ``until(feed)`` holds."""
    records: list[BinanceRecord] = []
    released = 0
    async with asyncio.timeout(40):
        async for record in feed:
            records.append(record)
            released += isinstance(record, Trade)
            if released >= trades and until(feed):
                return records
    raise AssertionError("the feed ended")


def tape_of(records: list[BinanceRecord], symbol: str) -> list[TradeKey]:
    return [
        (r.trade_id, r.price, r.quantity, r.is_buyer_maker, r.trade_ns)
        for r in records
        if isinstance(r, Trade) and r.symbol == symbol
    ]


async def exchange_tape(sim: SimulatorServer, symbol: str, first_id: int, count: int) -> list:
    history = sim.history
    now_us = sim.clock_ns() // 1000
    frame = await asyncio.to_thread(
        history.locked, history.trades_from_id, symbol, first_id, count, now_us
    )
    return [
        (row["id"], row["price"], row["qty"], row["isBuyerMaker"], row["time"] * MS_TO_NS)
        for row in trades_json(frame)
    ]


async def latest_trade_id(sim: SimulatorServer, symbol: str) -> int:
    history = sim.history
    now_us = sim.clock_ns() // 1000
    frame = await asyncio.to_thread(history.locked, history.recent_trades, symbol, 1, now_us)
    return int(frame["id"][0])


async def assert_exchange_tape(sim: SimulatorServer, tape: list[TradeKey], symbol: str) -> None:
    assert tape, f"no {symbol} trades"
    assert tape == await exchange_tape(sim, symbol, tape[0][0], len(tape))


def assert_every_frame_accounted_for(feed: MarketFeed) -> None:
    stats = feed.stats
    offered = stats.trades_from_stream + stats.trades_gap_filled
    assert offered == stats.trades_released + stats.trades_pending


def assert_nothing_skipped(feed: MarketFeed) -> None:
    assert feed.stats.unfilled_gaps == []
    assert feed.stats.trades_skipped == 0
    assert_every_frame_accounted_for(feed)


async def test_dropped_connections_are_gap_filled_into_the_exchange_tape(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.set_faults(drop_after_messages=120)

    async with feed_for(sim, tmp_path) as feed:
        records = await collect(feed, 600, lambda f: f.stats.reconnects["dropped"] >= 3)

    await assert_exchange_tape(sim, tape_of(records, "BTCUSDT"), "BTCUSDT")
    assert feed.stats.trades_gap_filled > 0
    assert feed.stats.connections_opened == feed.stats.reconnects["dropped"] + 1
    assert_nothing_skipped(feed)


async def test_duplicates_and_reorders_come_out_once_and_in_order(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.set_faults(duplicate_every=3, reorder_every=5)

    async with feed_for(sim, tmp_path, symbols=("BTCUSDT", "ETHUSDT")) as feed:
        records = await collect(feed, 500)

    for symbol in ("BTCUSDT", "ETHUSDT"):
        await assert_exchange_tape(sim, tape_of(records, symbol), symbol)
        update_ids = [
            r.update_id for r in records if isinstance(r, BookTicker) and r.symbol == symbol
        ]
        assert update_ids == sorted(set(update_ids))
    assert feed.stats.trades_duplicate > 0
    assert feed.stats.book_tickers_stale > 0
    assert_nothing_skipped(feed)


async def test_malformed_and_truncated_frames_are_dead_lettered_and_the_tape_stays_whole(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.set_faults(malformed_every=6, truncated_every=11)

    async with feed_for(sim, tmp_path) as feed:
        records = await collect(feed, 400)
    letters = list(read_dead_letters(tmp_path / "dead.jsonl"))

    await assert_exchange_tape(sim, tape_of(records, "BTCUSDT"), "BTCUSDT")
    assert_nothing_skipped(feed)
    assert len(letters) == feed.stats.frames_dead_lettered > 0
    malformed = [d.raw for d in letters if d.raw.startswith(b"<<malformed>> ")]
    truncated = [d.raw for d in letters if not d.raw.startswith(b"<<malformed>> ")]
    assert malformed and truncated
    for raw in malformed:  # the bytes kept are exactly the frame received
        parse_stream_frame(raw.removeprefix(b"<<malformed>> "), 0)
    assert all(raw.startswith(b'{"stream":"btcusdt@') for raw in truncated)
    assert {d.kind for d in letters} == {"malformed json"}
    assert all(d.receive_ns > 0 and d.reason for d in letters)
    assert feed.stats.trades_gap_filled > 0  # trades lost with their frames came over REST


async def test_a_lost_trade_holds_its_symbol_gap_open_until_it_is_filled(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.set_faults(malformed_every=6)
    gaps: list[bool] = []

    async with feed_for(sim, tmp_path) as feed, asyncio.timeout(40):
        async for _ in feed:
            gaps.append(feed.has_gap("BTCUSDT"))
            if len(gaps) == 200:
                sim.clear_faults()  # the frames flow whole again: the last gap gets filled
            elif len(gaps) > 200 and not gaps[-1]:
                break

    assert any(gaps[:200])  # trades were held behind dead-lettered ones...
    assert feed.stats.trades_pending == 0 and feed.stats.trades_gap_filled > 0  # ...until filled
    assert not feed.has_gap("ETHUSDT")  # a symbol the feed does not carry has no gap


async def test_a_stalled_stream_trips_the_watchdog_and_the_gap_is_filled(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.set_faults(stall_after_messages=80, stall_seconds=8)

    def recovered(feed: MarketFeed) -> bool:
        if feed.stats.reconnects["watchdog"] and sim.faults.plan.stall_seconds:
            sim.clear_faults()  # stalls are once per connection: keep the next one healthy
        return feed.stats.reconnects["watchdog"] > 0

    async with feed_for(sim, tmp_path, symbols=("BTCUSDT", "ETHUSDT"), watchdog_s=2.0) as feed:
        records = await collect(feed, 300, recovered)
        records += await collect(feed, 200)

    await assert_exchange_tape(sim, tape_of(records, "BTCUSDT"), "BTCUSDT")
    assert feed.stats.reconnects["watchdog"] >= 1
    assert feed.stats.trades_gap_filled > 0
    assert_nothing_skipped(feed)


async def test_restart_with_resume_from_fills_from_the_last_landed_trade(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    async with feed_for(sim, tmp_path) as first_run:
        before = tape_of(await collect(first_run, 100), "BTCUSDT")
    landed = before[-1][0]
    await asyncio.sleep(1.0)  # the market moves on while the sidecar is down

    async with feed_for(sim, tmp_path, resume_from={"BTCUSDT": landed}) as second_run:
        after = tape_of(await collect(second_run, 300), "BTCUSDT")

    assert after[0][0] == landed + 1
    await assert_exchange_tape(sim, before + after, "BTCUSDT")
    assert second_run.stats.trades_gap_filled > 0
    assert_nothing_skipped(second_run)


async def test_rest_rate_limits_are_waited_out_during_gap_fill(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    resume = await latest_trade_id(sim, "BTCUSDT") - 1500  # a restart gap that takes two pages
    sim.set_faults(http_429_next=2, retry_after_seconds=1)

    async with feed_for(sim, tmp_path, resume_from={"BTCUSDT": resume}) as feed:
        records = await collect(feed, 2000)

    tape = tape_of(records, "BTCUSDT")
    assert tape[0][0] == resume + 1
    await assert_exchange_tape(sim, tape, "BTCUSDT")
    assert sim.faults.applied["http_429"] == 2
    assert feed.stats.gap_fill_failures == 0
    assert_nothing_skipped(feed)


async def test_an_unavailable_rest_api_skips_the_gap_and_records_it(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    resume = await latest_trade_id(sim, "BTCUSDT") - 100
    sim.set_faults(http_5xx_next=1_000)

    async with feed_for(sim, tmp_path, resume_from={"BTCUSDT": resume}) as feed:
        tape = tape_of(await collect(feed, 200), "BTCUSDT")

    gap = feed.stats.unfilled_gaps[0]
    assert (gap.symbol, gap.first_id, gap.last_id) == ("BTCUSDT", resume + 1, tape[0][0] - 1)
    assert feed.stats.trades_skipped == gap.last_id - gap.first_id + 1
    await assert_exchange_tape(sim, tape, "BTCUSDT")


async def test_rate_limited_handshakes_are_retried_after_retry_after(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    sim.set_faults(ws_429_next=2, retry_after_seconds=1)

    async with feed_for(sim, tmp_path, backoff=Backoff(initial_s=0.0, max_s=0.0)) as feed:
        records = await collect(feed, 50)

    assert feed.stats.reconnects["rate_limited"] == 2
    assert sim.faults.applied["ws_429"] == 2
    await assert_exchange_tape(sim, tape_of(records, "BTCUSDT"), "BTCUSDT")
    assert_nothing_skipped(feed)


async def test_connections_are_replaced_before_their_maximum_age(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    async with feed_for(sim, tmp_path, max_connection_s=0.6) as feed:
        records = await collect(feed, 200, lambda f: f.stats.reconnects["max_age"] >= 3)

    assert set(feed.stats.reconnects) == {"max_age"}
    await assert_exchange_tape(sim, tape_of(records, "BTCUSDT"), "BTCUSDT")
    assert_nothing_skipped(feed)


async def test_keepalive_pings_are_answered_and_close_is_clean(tmp_path: Path) -> None:
    clock = market_clock(BUSY_AFTERNOON, speed=SPEED)
    async with SimulatorServer(symbols=["BTCUSDT"], clock_ns=clock, heartbeat_seconds=0.5) as sim:
        async with feed_for(sim, tmp_path) as feed:
            await collect(feed, 600)  # many heartbeat rounds: a missed pong closes the socket
            open_during = sim.hub.subscriber_count
        async with asyncio.timeout(5):
            while sim.hub.subscriber_count:
                await asyncio.sleep(0.01)

    assert feed.stats.connections_opened == 1
    assert not feed.stats.reconnects
    assert open_during == 1
    assert not feed.connected


async def test_fetch_trades_pages_through_a_range_by_trade_id(sim: SimulatorServer) -> None:
    last = await latest_trade_id(sim, "BTCUSDT")
    first = last - 349

    async with AsyncBinanceRestClient(sim.http_url, retry=FAST_RETRY) as rest:
        bounded = await fetch_trades(rest, "BTCUSDT", first, first + 249, page_limit=100)
        caught_up = await fetch_trades(rest, "BTCUSDT", first, page_limit=100)

    assert [t.trade_id for t in bounded] == list(range(first, first + 250))
    assert [t.trade_id for t in caught_up][:350] == list(range(first, last + 1))
    exchange = await exchange_tape(sim, "BTCUSDT", first, len(caught_up))
    assert [(t.trade_id, t.price, t.quantity, t.is_buyer_maker, t.trade_ns) for t in caught_up] == (
        exchange
    )


async def test_a_rate_limited_handshake_reports_status_and_retry_after(
    sim: SimulatorServer,
) -> None:
    sim.set_faults(ws_429_next=1, retry_after_seconds=7)
    url = combined_stream_url(sim.ws_url, ["BTCUSDT"], ["trade"])

    with pytest.raises(HandshakeRejected) as rejected:
        await open_stream(url)
    connection = await open_stream(url)
    await connection.close()

    assert (rejected.value.status, rejected.value.retry_after_s) == (429, 7.0)
    assert rejected.value.rate_limited
