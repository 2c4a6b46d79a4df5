"""Coinbase and Kraken instruments end to end through Dagster: trades from the simulator's
Coinbase and Kraken protocols, parsed by the sidecar's venue feeds and landed by its landing
writer, become bronze, silver, 1 s bars and gold features for their day × instrument partition,
and their newest feature vector is served by the online store.

These venues publish no daily files: their days come from landed trades only. The Dagster runs go
in a process of their own whose ``TRADING_INSTRUMENTS`` lists them (see :mod:`tests.venue_chain`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from streaming.ingest.feed import MarketFeed
from streaming.ingest.feeds import Endpoints, VenueFeeds
from streaming.landing import TRADES_KIND, LandingWriter
from streaming.records import Trade
from streaming.simulator.clock import market_clock
from streaming.simulator.server import SimulatorServer
from tests.venue_chain import run_chain
from trading_assets.lib.feature_store.gold import read_gold
from trading_assets.lib.feature_store.online_reader import OnlineFeatureReader
from trading_assets.lib.feature_store.spec import TRAINING_SERVICE
from trading_assets.lib.lakehouse.pipeline import read_silver
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE, BRONZE_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import read_partition
from trading_assets.resources import FeastResource, IcebergCatalogResource

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(300)]
AFTERNOON = dt.datetime(2024, 3, 1, 18, 0, tzinfo=dt.UTC)  # the market's clock starts here
DAY = AFTERNOON.date()
SOURCES = {"COINBASE:BTC-USD": "coinbase.live.trades", "KRAKEN:BTC/USD": "kraken.live.trades"}
INSTRUMENTS = tuple(SOURCES)
SPEED = 10.0  # market seconds per wall-clock second
MIN_SPAN_NS = 30 * 1_000_000_000  # of each instrument's landed trades: its 10 s windows warm up


async def land_live_trades(sim: SimulatorServer, root: Path, data: Path) -> dict[str, list[Trade]]:
    """Land each instrument's trades as the sidecar receives them until every one has landed
    ``MIN_SPAN_NS`` of the market's time; the landed trades (the writer seals every segment)."""
    endpoints = {
        "COINBASE": Endpoints(sim.coinbase_ws_url, ""),
        "KRAKEN": Endpoints(sim.kraken_ws_url, ""),
    }
    feeds = VenueFeeds(INSTRUMENTS, endpoints, data)
    landed: dict[str, list[Trade]] = {instrument: [] for instrument in INSTRUMENTS}

    def enough() -> bool:
        return all(t and t[-1].trade_ns - t[0].trade_ns >= MIN_SPAN_NS for t in landed.values())

    async def consume(feed: MarketFeed, writer: LandingWriter) -> None:
        async with feed:
            async for record in feed:
                if type(record) is Trade:
                    writer.write(record)
                    landed[record.instrument].append(record)
                if enough():
                    return

    with LandingWriter(root, TRADES_KIND) as writer:
        consumers = asyncio.gather(*(consume(feed, writer) for feed in feeds.feeds.values()))
        try:
            await asyncio.wait_for(consumers, 90)
        except TimeoutError:
            counts = {instrument: len(trades) for instrument, trades in landed.items()}
            stats = {name: feed.stats for name, feed in feeds.feeds.items()}
            raise AssertionError(f"too few trades landed: {counts}; {stats}") from None
    return landed


async def test_coinbase_and_kraken_days_go_from_landing_to_the_online_store(tmp_path: Path):
    # Arrange: a real stretch of each venue's trades, landed
    data = tmp_path / "data"
    landing = data / "landing"
    async with SimulatorServer(
        symbols=["BTCUSDT"], seed=5, trades_per_day=3_000_000,
        clock_ns=market_clock(AFTERNOON, speed=SPEED),
    ) as sim:  # fmt: skip
        landed = await land_live_trades(sim, landing, data)

    # Act: the chain, as Dagster materializes it for these partitions
    env = {
        "TRADING_ENV": "local",
        "TRADING_DATA_DIR": str(data),
        "TRADING_LANDING_DIR": str(landing),
        "TRADING_INSTRUMENTS": ",".join(INSTRUMENTS),
    }
    chain = await asyncio.to_thread(run_chain, DAY, INSTRUMENTS, env)

    # Assert
    assert chain.returncode == 0, chain.stderr[-4000:]
    lake = IcebergCatalogResource.local(data / "iceberg").lakehouse()
    store = FeastResource.local(data / "feast").store()
    reader = OnlineFeatureReader(store, TRAINING_SERVICE)
    for instrument, source in SOURCES.items():
        ids = [trade.trade_id for trade in landed[instrument]]
        bronze = read_partition(lake.table(BRONZE_TRADES_TABLE), DAY, instrument)
        assert bronze.height == len(ids), instrument
        assert sorted(bronze["id"].cast(pl.Int64).to_list()) == sorted(ids), instrument
        assert bronze["instrument"].unique().to_list() == [instrument]
        assert bronze["source"].unique().to_list() == [source]

        silver = read_silver(lake, instrument, DAY)
        assert sorted(silver["trade_id"].to_list()) == sorted(ids), instrument
        bars = read_partition(lake.table(BARS_1S_TABLE), DAY, instrument)
        assert bars.height > 0 and bars["trade_count"].sum() == silver.height, instrument

        gold = read_gold(lake, instrument, DAY)
        assert gold.height > 0 and gold["instrument"].unique().to_list() == [instrument]
        newest = gold.sort("event_timestamp").row(-1, named=True)
        online = reader.read(instrument)
        assert online is not None, f"no online vector for {instrument}"
        assert online.event_time_ns == _ns(newest["event_timestamp"]), instrument
        assert online.values == {name: newest[name] for name in reader.names}, instrument
        assert any(value is not None for value in online.values.values()), instrument


def _ns(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1_000
