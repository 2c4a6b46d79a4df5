"""A silver day built the way the Dagster assets build it, from the exchange simulator's trades."""

from __future__ import annotations

import datetime as dt

from streaming.simulator.server import run_simulator_in_thread
from trading_assets.lib.lakehouse.pipeline import Lakehouse, fetch_raw, load_bronze, refine_silver


def simulated_silver_day(
    lake: Lakehouse, symbol: str, day: dt.date, *, seed: int, trades_per_day: int
) -> None:
    """The simulator's ``day`` of ``symbol`` fetched as Binance's bulk file, then taken through
    bronze to silver by the pipeline's own stages."""
    with run_simulator_in_thread(
        symbols=[symbol], seed=seed, trades_per_day=trades_per_day, live=False
    ) as sim:
        fetch_raw(lake, sim.http_url, symbol, day)
    load_bronze(lake, symbol, day)
    refine_silver(lake, symbol, day)
