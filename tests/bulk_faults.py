"""Bad bulk files served by the exchange simulator, and live trades landed for the same day."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx

from streaming.landing import TRADES_KIND, LandingWriter
from streaming.simulator.server import SimulatorThread, run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.lib.instruments import parse_instrument
from trading_assets.lib.lakehouse.records import Trade


@contextlib.contextmanager
def bulk_simulator(symbol: str, seed: int, trades_per_day: int) -> Iterator[SimulatorThread]:
    """The simulator serving bulk files (no live stream), for a module of tests."""
    with run_simulator_in_thread(
        symbols=[symbol], seed=seed, trades_per_day=trades_per_day, live=False
    ) as sim:
        yield sim


def served_then_cleared(simulator: SimulatorThread) -> Iterator[str]:
    """The simulator's URL for one test, its bulk faults cleared after it."""
    yield simulator.http_url
    clear_bulk_faults(simulator.http_url)


def break_day(http_url: str, symbol: str, day: dt.date, fault: str, line: int = 3) -> None:
    """Have the simulator serve ``symbol``'s trades zip of ``day`` broken as ``fault`` says
    (``symbol`` as the venue names it: ``BTCUSDT``)."""
    rule = {"symbol": symbol, "day": day.isoformat(), "fault": fault, "line": line}
    response = httpx.post(f"{http_url}/_sim/bulk_faults", json=rule, timeout=10)
    response.raise_for_status()


def clear_bulk_faults(http_url: str) -> None:
    httpx.delete(f"{http_url}/_sim/bulk_faults", timeout=10).raise_for_status()


def land_day(
    root: Path, market: SyntheticMarket, instrument: str, day: dt.date, repeat_first: int = 0
) -> int:
    """Land the simulator's trades of ``day`` for ``instrument`` (``BINANCE:BTCUSDT``) as the
    sidecar would (one sealed segment), the first ``repeat_first`` of them twice (a reconnect's
    overlap); return the rows landed."""
    venue, symbol = parse_instrument(instrument)
    trades = market.day_trades(symbol, day)
    records = [
        Trade(
            symbol=symbol,
            venue=venue,
            trade_id=row["id"],
            price=row["price"],
            quantity=row["qty"],
            is_buyer_maker=row["is_buyer_maker"],
            trade_ns=row["time"] * 1_000_000,  # milliseconds before 2025
            event_ns=row["time"] * 1_000_000,
            receive_ns=row["time"] * 1_000_000 + 2_000_000,
        )
        for row in trades.iter_rows(named=True)
    ]
    records += records[:repeat_first]
    with LandingWriter(root, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600) as writer:
        for record in records:
            writer.write(record)
        writer.rotate()
    return len(records)
