"""One simulator, every venue: the same synthetic tape reaches the sidecar's feed through Binance
spot, Binance USD-M futures, Coinbase and Kraken, each in its own protocol, on one port, each
venue's times later by its planted delay (``streaming/simulator/lead_lag.py``)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from streaming.ingest import MarketFeed
from streaming.records import PERPETUAL, SPOT, Trade
from streaming.simulator.clock import market_clock
from streaming.simulator.server import SimulatorServer
from streaming.venues import venue

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(60)]
BUSY_AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)
TRADES = 1000  # the delayed venues start some 400 trades back (a snapshot, then seconds late)
MS = 1_000_000


async def trades_of(feed: MarketFeed) -> list[Trade]:
    trades: list[Trade] = []
    async with feed, asyncio.timeout(30):
        async for record in feed:
            if isinstance(record, Trade):
                trades.append(record)
                if len(trades) >= TRADES:
                    return trades
    return trades


def tape(trades: list[Trade], delay_us: int) -> dict[int, tuple[Decimal, Decimal, bool, int]]:
    """Each trade by id, its numbers read as decimals and its tape time in ms: the venue's time
    less its delay (the venues write them differently: Binance's times are in ms, Coinbase's and
    Kraken's in µs)."""
    ms = {t.trade_id: (t.trade_ns - delay_us * 1000) // MS for t in trades}
    return {
        t.trade_id: (Decimal(t.price), Decimal(t.quantity), t.is_buyer_maker, ms[t.trade_id])
        for t in trades
    }


async def test_every_venue_streams_the_same_tape_from_one_simulator(tmp_path: Path) -> None:
    # Arrange
    clock = market_clock(BUSY_AFTERNOON, speed=10.0)
    async with SimulatorServer(symbols=["BTCUSDT"], clock_ns=clock) as sim:
        endpoints: list[tuple[str, str, str, tuple[str, ...]]] = [
            ("binance", sim.ws_url, "BTCUSDT", ("trade",)),
            ("binance_futures", sim.futures_ws_url, "BTCUSDT", ("trade",)),
            ("coinbase", sim.coinbase_ws_url, "BTC-USD", ("market_trades", "heartbeats")),
            ("kraken", sim.kraken_ws_url, "BTC/USD", ("trade",)),
        ]
        feeds = {
            name: MarketFeed(
                url,
                sim.http_url,
                [symbol],
                venue=venue(name),
                channels=channels,
                dead_letter_path=tmp_path / f"{name}.jsonl",
            )
            for name, url, symbol, channels in endpoints
        }

        # Act
        got = dict(zip(feeds, await asyncio.gather(*map(trades_of, feeds.values())), strict=True))
        delays_us = sim.venue_delays_us

    # Assert
    for name, trades in got.items():
        found = venue(name)
        assert len(trades) >= TRADES, name
        assert {(t.venue, t.market) for t in trades} == {(found.name, found.market)}, name
        if found.contiguous_trade_ids:
            ids = [t.trade_id for t in trades]
            assert ids == list(range(ids[0], ids[0] + len(ids))), name
    assert venue("binance_futures").market == PERPETUAL and venue("coinbase").market == SPOT
    assert delays_us["coinbase"] > 0 and delays_us["kraken"] > 0  # followers, by default
    reference = tape(got["binance"], delays_us["binance"])
    for name in ("binance_futures", "coinbase", "kraken"):
        other = tape(got[name], delays_us[name])
        common = reference.keys() & other.keys()
        assert common, f"{name} shares no trade with Binance spot"
        assert {i: other[i] for i in common} == {i: reference[i] for i in common}, name
