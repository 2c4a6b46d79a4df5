"""One sidecar serving three venues at once from the simulator: each instrument's trades land
under its own folder, its features reach the online store, it gets its own predictions, and the
same synthetic tape arrives through every venue's protocol."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
import polars as pl
import pytest

from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import applied_sidecar, venues_config
from trading_assets.lib.instruments import path_name
from trading_assets.lib.lakehouse.landing import read_landed_trades

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(120)]
INSTRUMENTS = ("BINANCE:BTCUSDT", "COINBASE:BTC-USD", "KRAKEN:BTC/USD")
MIN_TRADES = 20


async def test_one_sidecar_serves_instruments_of_three_venues(tmp_path: Path) -> None:
    # Arrange
    with run_simulator_in_thread(symbols=["BTCUSDT"], seed=5, trades_per_day=3_000_000) as sim:
        data = tmp_path / "data"
        config = venues_config(sim, INSTRUMENTS, data)
        sidecar = applied_sidecar(config)

        # Act: run until every instrument has its trades, a row online and a prediction
        task = asyncio.create_task(sidecar.run())
        counts = sidecar.metrics.messages.by_symbol
        try:
            async with asyncio.timeout(90):
                while not all(
                    i in counts
                    and counts[i].trades >= MIN_TRADES
                    and sidecar.online_reader.source(i) is not None
                    and i in sidecar.hub.latest()
                    for i in INSTRUMENTS
                ):
                    await asyncio.sleep(0.25)
            async with aiohttp.ClientSession() as http:
                base = f"http://{config.api_host}:{config.api_port}"
                async with http.get(f"{base}/metrics") as response:
                    metrics = await response.text()
                async with http.get(f"{base}/predictions/latest") as response:
                    latest = await response.json()
        finally:
            sidecar.stop()
            await asyncio.wait_for(task, 30)

    # Assert: every instrument's own predictions, feed and landing folder
    assert set(latest) == set(INSTRUMENTS)
    for venue in ("BINANCE", "COINBASE", "KRAKEN"):
        assert f'sidecar_feed_connections_opened_total{{venue="{venue}"}}' in metrics
    now = dt.datetime.now(dt.UTC)
    tapes: dict[str, pl.DataFrame] = {}
    for instrument in INSTRUMENTS:
        folder = data / "landing" / "trades" / path_name(instrument)
        days = sorted(dt.date.fromisoformat(p.name) for p in folder.iterdir())
        landed = pl.concat(
            [read_landed_trades(data / "landing", instrument, d, now).bronze for d in days]
        )
        assert landed["instrument"].unique().to_list() == [instrument]
        assert landed["source"].unique().to_list() == [
            f"{instrument.split(':')[0].lower()}.live.trades"
        ]
        tapes[instrument] = landed.select(
            pl.col("id").cast(pl.Int64), pl.col("price").cast(pl.Float64), "is_buyer_maker"
        )
    # The same tape through three protocols: where their trade ids meet, the trades agree
    reference = tapes["BINANCE:BTCUSDT"]
    for instrument in INSTRUMENTS[1:]:
        joined = reference.join(tapes[instrument], on="id", suffix="_other")
        assert joined.height > 0, f"{instrument} shares no trade with Binance spot"
        assert joined["price"].to_list() == joined["price_other"].to_list()
        assert joined["is_buyer_maker"].to_list() == joined["is_buyer_maker_other"].to_list()
