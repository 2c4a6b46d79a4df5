"""One sidecar serving three venues at once from the simulator: each instrument's trades land
under its own folder, its features reach the online store, it gets its own predictions, and the
same synthetic tape arrives through every venue's protocol. Coinbase's instrument has Binance
spot's as its cross reference: the cross rows the sidecar pushes online equal the batch
definition on the very records it received."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path

import aiohttp
import polars as pl
import pytest

from streaming.records import Trade
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import applied_sidecar, venues_config
from trading_assets.lib.features import CROSS, FeatureRow, trades_frame
from trading_assets.lib.features.cross_venue import compute_cross_features, cross_feature_names
from trading_assets.lib.instruments import path_name
from trading_assets.lib.lakehouse.bars import bars_from_trades
from trading_assets.lib.lakehouse.landing import read_landed_trades

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(120)]
INSTRUMENTS = ("BINANCE:BTCUSDT", "COINBASE:BTC-USD", "KRAKEN:BTC/USD")
REFERENCE, OWN = INSTRUMENTS[:2]
MIN_TRADES = 20
MIN_CROSS_ROWS = 15  # warm cross rows of the own instrument (past the 10 s window)


def same_float(a: float | None, b: float | None) -> bool:
    """The same value to the last bit, None and NaN each equal to themselves."""
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def batch_cross(received: list[object]) -> dict[float, dict]:
    """The batch cross features of the own instrument on the trades received, by event time."""
    trades = [r for r in received if type(r) is Trade]

    def bars(instrument: str) -> pl.DataFrame:
        mine = [t for t in trades if t.instrument == instrument]
        return bars_from_trades(trades_frame(instrument, mine))

    batch = compute_cross_features(bars(OWN), bars(REFERENCE), None, bar_s=1)
    return {row["event_timestamp"].timestamp(): row for row in batch.iter_rows(named=True)}


async def test_one_sidecar_serves_three_venues_and_a_cross_group(tmp_path: Path) -> None:
    # Arrange: every record received and every row submitted is kept
    with run_simulator_in_thread(symbols=["BTCUSDT"], seed=5, trades_per_day=3_000_000) as sim:
        data = tmp_path / "data"
        config = venues_config(sim, INSTRUMENTS, data, cross_references={OWN: REFERENCE})
        sidecar = applied_sidecar(config)
        received: list[object] = []
        pushed: list[FeatureRow] = []
        on_record, submit = sidecar.on_record, sidecar.online_writer.submit

        def keep_record(record: object) -> list[FeatureRow]:
            received.append(record)
            return on_record(record)

        def keep_row(row: FeatureRow) -> None:
            pushed.append(row)
            submit(row)

        sidecar.on_record = keep_record  # type: ignore[method-assign]
        sidecar.online_writer.submit = keep_row  # type: ignore[method-assign]

        def cross_rows() -> list[FeatureRow]:
            return [r for r in pushed if r.symbol == OWN and "lead_ret_10s" in r.values]

        # Act: run until every instrument has its trades, a row online and a prediction, and
        # the own instrument warm cross rows
        task = asyncio.create_task(sidecar.run())
        counts = sidecar.metrics.messages.by_symbol
        try:
            async with asyncio.timeout(100):
                while not all(
                    i in counts
                    and counts[i].trades >= MIN_TRADES
                    and sidecar.online_reader.source(i) is not None
                    and i in sidecar.hub.latest()
                    for i in INSTRUMENTS
                ) or (
                    sum(r.values["lead_ret_10s"] is not None for r in cross_rows()) < MIN_CROSS_ROWS
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

    # The cross rows pushed are the batch features of the same trades, to the last bit
    live, batch = cross_rows(), batch_cross(received)
    compared = [(row, batch[row.event_timestamp_us / 1e6]) for row in live
                if row.event_timestamp_us / 1e6 in batch]  # fmt: skip
    assert len(compared) >= MIN_CROSS_ROWS  # rows closed by the clock after the last trade: none
    for row, expected in compared:
        for name in cross_feature_names():
            a, b = row.values[name], expected[name]
            assert same_float(a, b), (name, row.event_timestamp_us, a, b)
    # The online store serves the own instrument's newest cross row under the instrument
    newest = max(live, key=lambda r: r.event_timestamp_us)
    online = sidecar.store.get_online_features(
        features=[f"{CROSS}:basis_bps", f"{CROSS}:lead_ret_10s"],
        entity_rows=[{"instrument": OWN}],
    ).to_dict()
    assert online["lead_ret_10s"] == [newest.values["lead_ret_10s"]]
    assert online["basis_bps"] == [newest.values["basis_bps"]]
