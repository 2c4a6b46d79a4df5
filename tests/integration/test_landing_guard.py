"""The landing guard with the market feed against the simulator, on a small tmpfs it fills: the
feed announces each run start before its first trade, and a pause, a resume the exchange first
fails, and the resume that succeeds leave every trade landed once, from the run's start on.

What the sidecar does per trade (land it, then note it as the instrument's newest) is done here by
:func:`hand_to_landing`, so the guard is exercised without a whole sidecar process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import msgspec
import pytest

from streaming.ingest import Backoff, MarketFeed
from streaming.landing import BOOK_TICKERS_KIND, TRADES_KIND, LandingProcess
from streaming.landing.disk import MinFree
from streaming.landing.guard import LandingGuard
from streaming.metrics import SidecarMetrics
from streaming.records import BookTicker, Trade
from streaming.simulator.binance.rest import trades_json
from streaming.simulator.clock import market_clock
from streaming.simulator.server import SimulatorServer
from streaming.venues.binance.client import RetryPolicy
from tests.full_disk import MiB, fill, small_tmpfs
from trading_assets.lib.instruments import instrument_id
from trading_assets.lib.lakehouse.landing import list_segments, read_complete_lines

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(90)]
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


def binance(symbol: str) -> str:
    """The instrument id of Binance spot's ``symbol``."""
    return instrument_id("BINANCE", symbol)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    clock = market_clock(BUSY_AFTERNOON, speed=10.0)
    async with SimulatorServer(symbols=list(SYMBOLS), clock_ns=clock) as server:
        yield server


async def until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def hand_to_landing(feed: MarketFeed, landing: LandingProcess, metrics: SidecarMetrics):
    """The sidecar's ``on_record``, as far as landing is concerned."""
    trades, book_tickers = landing.outlet(TRADES_KIND), landing.outlet(BOOK_TICKERS_KIND)
    async with feed:
        async for record in feed:
            if type(record) is Trade:
                trades.write(record)
                metrics.messages.of(record.instrument).newest_trade = record
            elif type(record) is BookTicker:
                book_tickers.write(record)


def binance_starts(guard: LandingGuard) -> Callable[[Mapping[str, int]], Awaitable[None]]:
    """The guard's ``record_run_starts`` told by a Binance spot feed (which speaks symbols), as
    the sidecar's venue feeds tell it: by instrument id."""

    async def record(starts: Mapping[str, int]) -> None:
        await guard.record_run_starts({binance(s): first for s, first in starts.items()})

    return record


def landed(root: Path, symbol: str) -> list[dict]:
    """The landed trades of Binance spot's ``symbol``."""
    return [
        msgspec.json.decode(line)
        for segment in list_segments(
            root, TRADES_KIND, instrument=binance(symbol), include_open=True
        )
        for line in read_complete_lines(segment.path).splitlines()
    ]


def exchange_trades(sim: SimulatorServer, symbol: str, ids: list[int]) -> list[dict]:
    """The simulator's own trades over the range of ``ids``, as its REST API serves them."""
    history, now_us = sim.history, sim.clock_ns() // 1000
    return trades_json(history.locked(history.trades_from_id, symbol, ids[0], len(ids), now_us))


def newest_trade_id(sim: SimulatorServer, symbol: str) -> int:
    history = sim.history
    frame = history.locked(history.recent_trades, symbol, 1, sim.clock_ns() // 1000)
    return int(frame["id"][-1])


async def test_the_feed_announces_each_run_start_before_its_first_trade(sim, tmp_path):
    resume = newest_trade_id(sim, "BTCUSDT") - 50
    events: list[tuple[str, int]] = []  # (symbol, trade id) of each start announced and trade

    async def announce(starts):
        events.extend(("start " + symbol, trade_id) for symbol, trade_id in starts.items())

    feed = MarketFeed(sim.ws_url, sim.http_url, SYMBOLS, dead_letter_path=tmp_path / "dead",
                      resume_from={"BTCUSDT": resume}, on_run_start=announce)  # fmt: skip
    async with feed:
        async for record in feed:
            if type(record) is Trade:
                events.append(("trade " + record.symbol, record.trade_id))
            if all(("trade " + s) in dict(events) for s in SYMBOLS):
                break

    assert events[0] == ("start BTCUSDT", resume + 1)  # a resume point: before anything
    for symbol in SYMBOLS:
        kinds = [kind for kind, _ in events]
        first_trade = kinds.index("trade " + symbol)
        start = kinds.index("start " + symbol)
        assert start < first_trade  # announced before its first trade
        assert events[start][1] == events[first_trade][1]  # and it is that trade's id


@pytest.mark.parametrize(
    ("min_free", "leave", "why"),
    [
        ("4MiB", 1 * MiB, "free space below the minimum"),  # paused before the disk is full
        ("0", 0, "no space left to land"),  # no minimum: the child meets the full disk itself
    ],
)
async def test_a_paused_landing_fetches_every_missed_trade_once_even_after_a_failed_resume(
    sim, tmp_path, min_free, leave, why
):
    with small_tmpfs(tmp_path / "disk", 16 * MiB) as disk:
        root = disk / "landing"
        landing = LandingProcess(root)
        metrics = SidecarMetrics()
        guard = LandingGuard(landing, sim.http_url, metrics, MinFree.parse(min_free), tick_s=0.05,
                             rest_retry=FAST_RETRY)  # fmt: skip
        resume = newest_trade_id(sim, "BTCUSDT") - 200  # a restart: BTCUSDT resumed, ETHUSDT not
        feed = MarketFeed(
            sim.ws_url, sim.http_url, SYMBOLS, dead_letter_path=tmp_path / "dead",
            resume_from={"BTCUSDT": resume}, on_run_start=binance_starts(guard),
            backoff=Backoff(initial_s=0.01, max_s=0.2), rest_retry=FAST_RETRY,
        )  # fmt: skip
        tasks = [asyncio.create_task(hand_to_landing(feed, landing, metrics)),
                 asyncio.create_task(guard.run())]  # fmt: skip
        states: list[str | None] = []

        def seen(condition: Callable[[str | None], bool]) -> bool:
            if not states or states[-1] != landing.status.paused:
                states.append(landing.status.paused)
            return condition(states[-1])

        try:
            await until(lambda: len(landed(root, "ETHUSDT")) > 20, 30, "trades to land")
            filler = fill(disk, leave)
            await until(lambda: seen(lambda s: s is not None), 10, "a pause")
            paused_gauge = metrics.registry.get_sample_value("sidecar_landing_paused")
            free_gauge = metrics.registry.get_sample_value("sidecar_landing_free_bytes")
            await asyncio.sleep(1.0)  # trades go by, not landed
            missed = {s: metrics.messages.of(binance(s)).newest_trade.trade_id for s in SYMBOLS}
            sim.set_faults(http_5xx_next=FAST_RETRY.max_attempts)  # the first catch-up fails
            filler.unlink()
            await until(lambda: seen(lambda s: s is None), 30, "landing to resume")
            newest = {s: metrics.messages.of(binance(s)).newest_trade.trade_id for s in SYMBOLS}
            await until(lambda: all(landed(root, s)[-1]["trade_id"] >= newest[s] for s in SYMBOLS),
                        30, "the live trades to land")  # fmt: skip
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            landing.close()

        rows = {symbol: landed(root, symbol) for symbol in SYMBOLS}

    assert paused_gauge == 1 and free_gauge is not None and free_gauge <= leave
    assert states[1] is not None and states[1].startswith(why), states
    assert any(s and s.startswith("resuming failed") for s in states), states
    assert sim.faults.applied["http_5xx"] == FAST_RETRY.max_attempts
    assert rows["BTCUSDT"][0]["trade_id"] == resume + 1
    assert rows["ETHUSDT"][0]["trade_id"] == feed.run_starts["ETHUSDT"]
    for symbol, records in rows.items():
        ids = [r["trade_id"] for r in records]
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{symbol}: a gap or a repeat"
        assert ids[-1] > missed[symbol]  # through the pause
        history = sim.history
        frame = history.locked(
            history.trades_from_id, symbol, ids[0], len(ids), sim.clock_ns() // 1000
        )
        exchange = [(t["id"], t["price"], t["qty"]) for t in trades_json(frame)]
        assert [(r["trade_id"], r["price"], r["quantity"]) for r in records] == exchange
