"""Silver days built the way the Dagster assets build them, from the exchange simulator's trades."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import polars as pl

from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import DEFAULT_EDGE, SyntheticMarket
from trading_assets.lib.instruments import parse_instrument
from trading_assets.lib.lakehouse.bronze import parse_bronze
from trading_assets.lib.lakehouse.pipeline import Lakehouse, fetch_raw, load_bronze, refine_silver
from trading_assets.lib.lakehouse.silver import split_silver


def simulated_silver_day(
    lake: Lakehouse,
    instrument: str,
    day: dt.date,
    *,
    seed: int,
    trades_per_day: int,
    edge: float = DEFAULT_EDGE,
) -> None:
    """The simulator's ``day`` of ``instrument`` (``BINANCE:BTCUSDT``) fetched as Binance's bulk
    file, then taken through bronze to silver by the pipeline's own stages."""
    _, symbol = parse_instrument(instrument)
    with run_simulator_in_thread(
        symbols=[symbol], seed=seed, trades_per_day=trades_per_day, edge=edge, live=False
    ) as sim:
        fetch_raw(lake, sim.http_url, instrument, day)
    load_bronze(lake, instrument, day)
    refine_silver(lake, instrument, day)


def bulk_silver_day(market: SyntheticMarket, instrument: str, day: dt.date) -> pl.DataFrame:
    """The silver rows of ``instrument``'s ``day``: the bulk zip the simulator serves for it,
    parsed to bronze and refined by the pipeline's own functions, without a catalog in between
    (for many days)."""
    _, symbol = parse_instrument(instrument)
    payload = market.day_trades_csv_zip(symbol, day)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (member,) = archive.namelist()
        csv = archive.read(member)
    source_file = member.removesuffix(".csv") + ".zip"
    bronze = parse_bronze(csv, day, instrument, source_file, dt.datetime.now(dt.UTC))
    split = split_silver(bronze, day)
    if not split.quarantine.is_empty():
        raise ValueError(
            f"{instrument} {day}: {split.quarantine.height} simulator rows quarantined"
        )
    return split.silver
