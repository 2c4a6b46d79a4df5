"""The planted lead-lag (``streaming/simulator/lead_lag.py``): the venues show one tape, each its
own delay behind Binance spot, and the cross-venue features find that lead, and only it.

Through the real protocols: the same trade id reaches a delayed venue with its time later by
exactly the venue's delay (the same time at a venue without one); snapshots at subscription are
those of the delayed clock; across midnight a delayed venue finishes the day before on its own
clock, no trade skipped or repeated. Ground truth: 1 s bars of the tape as Binance spot shows it
and as Coinbase shows it, through the batch cross features: the leader's return predicts the
follower's next move with the delay planted, and nothing without it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import websockets

from streaming.ingest import MarketFeed
from streaming.records import Trade
from streaming.simulator.__main__ import parse_args, venue_delays
from streaming.simulator.binance.bulk_format import format_e8
from streaming.simulator.clock import market_clock
from streaming.simulator.lead_lag import (
    DEFAULT_VENUE_DELAYS_S,
    delayed_tape,
    venue_delays_us,
)
from streaming.simulator.server import SimulatorServer
from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.synthetic_book import BookState, state_after
from streaming.simulator.tape import DayTape, day_start_us
from streaming.venues import venue
from streaming.venues.coinbase import rfc3339_ns
from tests.permutation import circular_shift_test
from trading_assets.lib.features import FeatureConfig, compute_labels, trades_frame
from trading_assets.lib.features.cross_venue import compute_cross_features
from trading_assets.lib.lakehouse.bars import bars_from_trades

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(60)]
SYMBOL, PRODUCT, PAIR = "BTCUSDT", "BTC-USD", "BTC/USD"
DAY = dt.date(2024, 3, 1)
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
MIDNIGHT_US = day_start_us(DAY + dt.timedelta(days=1))
US, MS = 1_000_000, 1_000_000  # µs per second, ns per ms
Shown = tuple[str, int, int]
"""A trade as a venue shows it: (message type, trade id, time in µs)."""


def coinbase_subscribe(channel: str) -> str:
    return json.dumps({"type": "subscribe", "channel": channel, "product_ids": [PRODUCT]})


def kraken_subscribe(channel: str) -> str:
    params = {"channel": channel, "symbol": [PAIR], "snapshot": True}
    return json.dumps({"method": "subscribe", "params": params})


# --- the protocols -------------------------------------------------------------------------------


ENDPOINTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "binance": ("ws_url", SYMBOL, ("trade",)),
    "binance_futures": ("futures_ws_url", SYMBOL, ("trade",)),
    "coinbase": ("coinbase_ws_url", PRODUCT, ("market_trades", "heartbeats")),
    "kraken": ("kraken_ws_url", PAIR, ("trade",)),
}
"""Each venue's URL (the simulator's attribute), symbol and channels."""


def feed_of(sim: SimulatorServer, name: str, tmp_path: Path) -> MarketFeed:
    """The project's feed of one venue of the simulator."""
    attribute, symbol, channels = ENDPOINTS[name]
    dead_letters = tmp_path / f"{name}.jsonl"
    return MarketFeed(
        getattr(sim, attribute), sim.http_url, [symbol], venue=venue(name), channels=channels,
        dead_letter_path=dead_letters,
    )  # fmt: skip


async def trades_until(feed: MarketFeed, tape_ns: int, delay_us: int) -> list[Trade]:
    """The feed's trades until it shows the tape at ``tape_ns`` (its times less its delay)."""
    trades: list[Trade] = []
    async with feed, asyncio.timeout(30):
        async for record in feed:
            if isinstance(record, Trade):
                trades.append(record)
                if record.trade_ns - delay_us * 1000 >= tape_ns:
                    break
    return trades


async def test_a_trade_reaches_each_venue_later_by_exactly_its_delay(tmp_path: Path) -> None:
    # Arrange: the default delays, the project's own feeds, 20 s of the tape at 10x
    clock = market_clock(BUSY_AFTERNOON, speed=10.0)
    until_ns = (day_start_us(DAY) + 18 * 3600 * US + 20 * US) * 1000
    async with SimulatorServer(symbols=[SYMBOL], clock_ns=clock) as sim:
        delays_us = sim.venue_delays_us
        runs = [
            trades_until(feed_of(sim, name, tmp_path), until_ns, delays_us[name])
            for name in ENDPOINTS
        ]

        # Act
        got = dict(zip(ENDPOINTS, await asyncio.gather(*runs), strict=True))

    # Assert: the same trades, each time later by the venue's delay (Binance's are in ms)
    assert delays_us == {"binance": 0, "binance_futures": 0, "coinbase": 2 * US, "kraken": 3 * US}
    leader = {t.trade_id: t for t in got["binance"]}
    for name in ("binance_futures", "coinbase", "kraken"):
        follower = {t.trade_id: t for t in got[name]}
        common = sorted(leader.keys() & follower.keys())
        assert len(common) >= 50, name
        late_ms = delays_us[name] // 1000
        for trade_id in common:
            ours, theirs = leader[trade_id], follower[trade_id]
            assert theirs.trade_ns // MS == ours.trade_ns // MS + late_ms, (name, trade_id)
            assert Decimal(theirs.price) == Decimal(ours.price), (name, trade_id)
            assert Decimal(theirs.quantity) == Decimal(ours.quantity), (name, trade_id)
            assert theirs.is_buyer_maker == ours.is_buyer_maker, (name, trade_id)


class FrozenClock:
    """A market clock standing still."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us * 1000


def coinbase_trades(raw: str | bytes) -> list[Shown]:
    message = json.loads(raw)
    if message.get("channel") != "market_trades":
        return []
    return [
        (event["type"], int(t["trade_id"]), rfc3339_ns(t["time"]) // 1000)
        for event in message["events"]
        for t in event["trades"]
    ]


def kraken_trades(raw: str | bytes) -> list[Shown]:
    message = json.loads(raw)
    if message.get("channel") != "trade":
        return []
    return [
        (message["type"], t["trade_id"], rfc3339_ns(t["timestamp"]) // 1000)
        for t in message["data"]
    ]


class Tape:
    """The shared tape of consecutive days, by trade id."""

    def __init__(self, tapes: list[DayTape]) -> None:
        self.ids = np.concatenate([t.trade_ids for t in tapes])
        self.times_us = np.concatenate([t.trade_time_us for t in tapes])
        self.tapes = tapes

    def last_id_by(self, time_us: int) -> int:
        """The id of the last trade at or before ``time_us`` (tape time)."""
        return int(self.ids[np.searchsorted(self.times_us, time_us, side="right") - 1])

    def time_of(self, trade_id: int) -> int:
        return int(self.times_us[trade_id - int(self.ids[0])])

    def book_at(self, time_us: int) -> BookState:
        """The book as the last order at or before ``time_us`` (within one day) left it."""
        tape = next(t for t in reversed(self.tapes) if t.trade_time_us[0] <= time_us)
        order = int(np.searchsorted(tape.order_time_us, time_us, side="right")) - 1
        return state_after(tape, order)


async def read_until(
    ws: Any, parse: Callable[[str | bytes], list[Shown]], last_id: int
) -> list[Shown]:
    """Trades the connection shows until the one with ``last_id``."""
    shown: list[Shown] = []
    async with asyncio.timeout(20):
        while not any(trade_id == last_id for _, trade_id, _ in shown):
            shown += parse(await ws.recv())
    return shown


async def first_of(ws: Any, channels: tuple[str, ...]) -> dict[str, Any]:
    """The first message of each channel (numbers read as decimals)."""
    found: dict[str, Any] = {}
    async with asyncio.timeout(20):
        while len(found) < len(channels):
            message = json.loads(await ws.recv(), parse_float=Decimal)
            if message.get("channel") in channels:
                found.setdefault(message["channel"], message)
    return found


@pytest.fixture(scope="module")
def quiet_night() -> SyntheticMarket:
    """Seed 3 trades in the last 2 s of 2024-03-01 and the first 2 s of the next day."""
    return SyntheticMarket(seed=3, trades_per_day=500_000)


def price(ticks: int, tape: DayTape) -> Decimal:
    return Decimal(ticks * tape.instrument.tick_e8).scaleb(-8)


@pytest.mark.parametrize(
    "now_us",
    [day_start_us(DAY) + 16 * 3600 * US + US // 2, MIDNIGHT_US + 3 * US // 2],
    ids=["afternoon", "past_midnight_before_the_venues_midnight"],
)
async def test_snapshots_at_subscription_are_those_of_the_delayed_clock(
    quiet_night, now_us: int
) -> None:
    # Arrange: a frozen clock; Binance spot's last trade now is not the delayed venues' last
    tape = Tape([quiet_night.tape(SYMBOL, DAY + dt.timedelta(days=d)) for d in (0, 1)])
    delays = {"coinbase": 2 * US, "kraken": 3 * US}
    for delay in delays.values():
        assert tape.last_id_by(now_us - delay) != tape.last_id_by(now_us)
    server = SimulatorServer(
        symbols=[SYMBOL], clock_ns=FrozenClock(now_us), market=quiet_night, listing_date=DAY,
        venue_delays_s={"coinbase": 2.0, "kraken": 3.0},
    )  # fmt: skip

    # Act
    async with server as sim:
        async with websockets.connect(sim.coinbase_ws_url) as ws:
            for channel in ("market_trades", "ticker"):
                await ws.send(coinbase_subscribe(channel))
            coinbase = await first_of(ws, ("market_trades", "ticker"))
        async with websockets.connect(sim.kraken_ws_url) as ws:
            for channel in ("trade", "ticker"):
                await ws.send(kraken_subscribe(channel))
            kraken = await first_of(ws, ("trade", "ticker"))

    # Assert: the trades up to the delayed clock, each at its time + the delay; its book
    trades = [
        (int(t["trade_id"]), rfc3339_ns(t["time"]) // 1000)
        for t in coinbase["market_trades"]["events"][0]["trades"]
    ]
    newest = tape.last_id_by(now_us - delays["coinbase"])
    assert [i for i, _ in trades] == list(range(newest, newest - 100, -1))
    assert all(time == tape.time_of(i) + delays["coinbase"] for i, time in trades)
    ticker = coinbase["ticker"]["events"][0]["tickers"][0]
    book = tape.book_at(now_us - delays["coinbase"])
    assert Decimal(ticker["best_bid"]) == price(book.bid_ticks, tape.tapes[0])
    assert Decimal(ticker["best_ask"]) == price(book.ask_ticks, tape.tapes[0])
    trades = [(t["trade_id"], rfc3339_ns(t["timestamp"]) // 1000) for t in kraken["trade"]["data"]]
    newest = tape.last_id_by(now_us - delays["kraken"])
    assert [i for i, _ in trades] == list(range(newest - 49, newest + 1))
    assert all(time == tape.time_of(i) + delays["kraken"] for i, time in trades)
    ticker = kraken["ticker"]["data"][0]
    book = tape.book_at(now_us - delays["kraken"])
    assert ticker["bid"] == price(book.bid_ticks, tape.tapes[0])
    assert ticker["ask"] == price(book.ask_ticks, tape.tapes[0])


@pytest.mark.parametrize(
    "start_us", [MIDNIGHT_US - 4 * US, MIDNIGHT_US + US], ids=["before", "between_midnights"]
)
async def test_a_delayed_venue_ends_the_day_on_its_own_clock(quiet_night, start_us: int) -> None:
    # Arrange: the market at 4x from 4 s before midnight, or from 1 s after it, when the delayed
    # venues' clocks are still before theirs (Coinbase 2 s behind, Kraken 3 s)
    tape = Tape([quiet_night.tape(SYMBOL, DAY + dt.timedelta(days=d)) for d in (0, 1)])
    delays = {"coinbase": 2 * US, "kraken": 3 * US}
    start = dt.datetime.fromtimestamp(start_us / US, dt.UTC)
    server = SimulatorServer(
        symbols=[SYMBOL], clock_ns=market_clock(start, speed=4.0), market=quiet_night,
        listing_date=DAY, venue_delays_s={"coinbase": 2.0, "kraken": 3.0},
    )  # fmt: skip
    until = {name: tape.last_id_by(MIDNIGHT_US + 5 * US - d) for name, d in delays.items()}
    assert all(tape.time_of(i) >= MIDNIGHT_US for i in until.values())  # in the new day

    # Act: from the snapshot at subscription until 5 s past midnight
    async with (
        server as sim,
        websockets.connect(sim.coinbase_ws_url) as coinbase,
        websockets.connect(sim.kraken_ws_url) as kraken,
    ):
        await coinbase.send(coinbase_subscribe("market_trades"))
        await kraken.send(kraken_subscribe("trade"))
        shown = {
            "coinbase": await read_until(coinbase, coinbase_trades, until["coinbase"]),
            "kraken": await read_until(kraken, kraken_trades, until["kraken"]),
        }

    # Assert: every trade once, at its time + the delay: the day before's last ones after midnight
    for name, trades in shown.items():
        assert trades[0][0] == "snapshot", name  # the trades before the subscription, then on
        ids = [trade_id for _, trade_id, _ in trades]
        assert sorted(ids) == list(range(min(ids), until[name] + 1)), f"{name}: skipped/repeated"
        assert all(time == tape.time_of(i) + delays[name] for _, i, time in trades), name
        late = [i for _, i, time in trades if tape.time_of(i) < MIDNIGHT_US <= time]
        assert late, f"{name} showed no trade of the day before after midnight"
        assert min(ids) < min(late) and max(late) < until[name], name  # in the middle of both


def test_the_delays_are_configured_in_one_place() -> None:
    # Act
    defaults = venue_delays(parse_args([]))
    changed = venue_delays(
        parse_args(["--venue-delay", "COINBASE=0.5", "--venue-delay", "kraken=0"])
    )
    none = venue_delays(parse_args(["--no-lead-lag"]))

    # Assert
    assert defaults == dict(DEFAULT_VENUE_DELAYS_S)
    assert venue_delays_us(changed) == {
        "binance": 0,
        "binance_futures": 0,
        "coinbase": 500_000,
        "kraken": 0,
    }
    assert venue_delays_us(none) == dict.fromkeys(DEFAULT_VENUE_DELAYS_S, 0)
    for bad in ({"binance": 1.0}, {"bitstamp": 1.0}, {"kraken": -1.0}, {"kraken": float("nan")}):
        with pytest.raises(ValueError):
            SimulatorServer(venue_delays_s=bad)
    with pytest.raises(SystemExit):
        parse_args(["--venue-delay", "binance=2"])


# --- ground truth: what the cross features find -------------------------------------------------


def shown_trade(symbol: str, tape: DayTape, index: int) -> Trade:
    """Trade ``index`` of ``tape`` as a record, timed as the tape shows it."""
    inst, time_ns = tape.instrument, int(tape.trade_time_us[index]) * 1000
    price_text = format_e8(int(tape.trade_price_ticks[index]) * inst.tick_e8)
    qty_text = format_e8(int(tape.trade_qty_steps[index]) * inst.step_e8)
    taker_sold = bool(tape.trade_buyer_maker[index])
    trade_id = tape.first_trade_id + index
    return Trade(symbol, trade_id, price_text, qty_text, taker_sold, time_ns, time_ns, time_ns, "")


def bars(symbol: str, tape: DayTape, start_us: int, end_us: int) -> pl.DataFrame:
    """1 s bars of the trades ``tape`` shows in [start, end), through the lakehouse's bar code."""
    lo, hi = np.searchsorted(tape.trade_time_us, [start_us, end_us])
    trades = [shown_trade(symbol, tape, i) for i in range(int(lo), int(hi))]
    return bars_from_trades(trades_frame(symbol, trades))


@pytest.fixture(scope="module")
def random_walk() -> DayTape:
    """A busy martingale tape (no planted drift: nothing else to predict)."""
    return SyntheticMarket(seed=11, trades_per_day=2_000_000, edge=0.0).tape(SYMBOL, DAY)


@pytest.mark.parametrize("delays_s", [None, {}], ids=["default_delays", "no_lead_lag"])
def test_the_leaders_return_predicts_the_follower_only_where_planted(random_walk, delays_s) -> None:
    # Arrange: an hour of Binance spot and of Coinbase as the simulator shows them
    delay_us = venue_delays_us(delays_s)["coinbase"]
    horizon_s = venue_delays_us()["coinbase"] // US  # the planted delay, in both cases
    config = FeatureConfig(windows_s=(10, 60), label_horizon_s=horizon_s)
    start_us = day_start_us(DAY) + 17 * 3600 * US
    end_us = start_us + 3600 * US
    leader = bars(SYMBOL, random_walk, start_us, end_us)
    follower = bars(PRODUCT, delayed_tape(random_walk, delay_us), start_us, end_us)

    # Act
    cross = compute_cross_features(follower, leader, None, config, bar_s=1)
    forward = compute_labels(follower, config, bar_s=1)
    joined = cross.join(forward, on=["instrument", "event_timestamp"], how="inner")
    tests = {}
    for w in config.windows_s:
        pairs = joined.select(f"lead_ret_{w}s", f"fwd_log_return_{horizon_s}s").drop_nulls()
        tests[w] = circular_shift_test(*pairs.to_numpy().T, min_lag=w + horizon_s)

    # Assert
    assert joined.height >= 3500
    (r10, p10), (r60, p60) = tests[10], tests[60]
    if delay_us:  # the planted lead: about √(d / w), 0.45 over 10 s and 0.18 over 60 s
        assert 0.3 < r10 < 0.6 and p10 <= 0.01, (r10, p10)
        assert 0.1 < r60 < 0.3 and p60 <= 0.01, (r60, p60)
        # The follower's price is the leader's of d seconds ago: the basis is its next move.
        basis = joined.select("basis_bps", f"fwd_log_return_{horizon_s}s").drop_nulls()
        assert np.corrcoef(*basis.to_numpy().T)[0, 1] < -0.99
    else:  # one price path: the cross features hold nothing but the own momentum, ...
        for name in ("basis_bps", "lead_gap_10s", "lead_gap_60s"):
            assert joined[name].drop_nulls().abs().max() == 0.0, name
        # ... which predicts nothing on a martingale: within noise, a third of the lead at most
        assert abs(r10) < 0.15 and abs(r60) < 0.15, tests
