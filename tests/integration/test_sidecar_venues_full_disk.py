"""A full disk under one sidecar serving a Binance and a Coinbase instrument from the simulator:
landing pauses, and once there is room it resumes for both. Binance's missed trades are fetched
again by id and landed (no id missing); Coinbase serves no trade history, so its missed trades
are a hole in its landed run, reported in the landing's status and on ``/metrics``.

The landing folder is a small tmpfs the test fills with a file (as ``test_sidecar_full_disk``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgspec
import pytest

from streaming.landing import TRADES_KIND, last_landed_trade_ids
from streaming.landing.disk import MinFree
from streaming.simulator.binance.rest import trades_json
from streaming.simulator.server import SimulatorServer, run_simulator_in_thread
from tests.full_disk import MiB, fill, small_tmpfs
from tests.integration.live_sidecar import applied_sidecar, venues_config
from trading_assets.lib.lakehouse.landing import list_segments, read_complete_lines

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.venues,
    pytest.mark.timeout(150),
]
BINANCE, COINBASE = "BINANCE:BTCUSDT", "COINBASE:BTC-USD"
INSTRUMENTS = (BINANCE, COINBASE)
DISK_BYTES = 48 * MiB
MIN_FREE = "16MiB"
LOW_BYTES = 4 * MiB  # what the filler leaves: below the minimum


async def until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def landed(root: Path, instrument: str) -> list[dict]:
    """Every landed trade of ``instrument``, in landing order."""
    return [
        msgspec.json.decode(line)
        for segment in list_segments(root, TRADES_KIND, instrument=instrument, include_open=True)
        for line in read_complete_lines(segment.path).splitlines()
    ]


def landed_past(root: Path, ids: dict[str, int]) -> bool:
    """Whether every instrument has landed its trade ``ids[instrument]`` or a later one."""
    last = last_landed_trade_ids(root)
    return all(last.get(instrument, -1) >= trade_id for instrument, trade_id in ids.items())


def exchange_trades(sim: SimulatorServer, symbol: str, first: int, last: int) -> list[tuple]:
    """(id, price, quantity) of the simulator's trades ``first..last``, as its REST API serves."""
    history, now_us = sim.history, sim.clock_ns() // 1000
    frame = history.locked(history.trades_from_id, symbol, first, last - first + 1, now_us)
    return [(t["id"], t["price"], t["qty"]) for t in trades_json(frame)]


async def test_a_venue_without_trade_history_leaves_a_reported_hole_and_the_others_catch_up(
    tmp_path: Path,
) -> None:
    # Arrange: one sidecar on Binance and Coinbase, landing on a small disk
    with (
        small_tmpfs(tmp_path / "disk", DISK_BYTES) as disk,
        run_simulator_in_thread(symbols=["BTCUSDT"], seed=5, trades_per_day=3_000_000) as sim,
    ):
        root = disk / "landing"
        config = venues_config(
            sim,
            INSTRUMENTS,
            tmp_path / "data",
            landing_dir=root,
            landing_min_free=MinFree.parse(MIN_FREE),
        )
        sidecar = applied_sidecar(config)
        status, messages = sidecar.landing.status, sidecar.metrics.messages

        def newest_delivered() -> dict[str, int]:
            return {i: messages.of(i).newest_trade.trade_id for i in INSTRUMENTS}

        # Act: fill the disk once both venues land, free it after a pause that misses trades
        task = asyncio.create_task(sidecar.run())
        try:
            await until(lambda: set(last_landed_trade_ids(root)) == set(INSTRUMENTS), 60,
                        "trades of both venues to land")  # fmt: skip
            filler = fill(disk, LOW_BYTES)
            await until(lambda: status.paused is not None, 10, "a pause")
            await asyncio.sleep(1.0)  # trades go by, not landed
            missed = newest_delivered()
            filler.unlink()
            await until(lambda: status.paused is None, 30, "landing to resume")
            newest = newest_delivered()
            await until(lambda: landed_past(root, newest), 30, "the live trades to land")
            ready = sidecar.readiness()
            async with aiohttp.ClientSession() as http:
                url = f"http://{config.api_host}:{config.api_port}/metrics"
                async with http.get(url) as response:
                    metrics = await response.text()
        finally:
            sidecar.stop()
            await asyncio.wait_for(task, 30)

        rows = {instrument: landed(root, instrument) for instrument in INSTRUMENTS}
        binance_ids = [r["trade_id"] for r in rows[BINANCE]]
        exchange = exchange_trades(sim.server, "BTCUSDT", binance_ids[0], binance_ids[-1])

    # Assert: Binance landed every trade through the pause, as the exchange has them
    assert binance_ids == list(range(binance_ids[0], binance_ids[-1] + 1)), "a gap or a repeat"
    assert binance_ids[-1] > missed[BINANCE]
    assert [(r["trade_id"], r["price"], r["quantity"]) for r in rows[BINANCE]] == exchange
    # Coinbase's missed trades are one reported hole, and exactly the ids missing from landing
    gaps = list(status.unfilled_gaps)
    assert [gap.instrument for gap in gaps] == [COINBASE], gaps
    gap = gaps[0]
    assert "COINBASE serves no trade history" in gap.reason
    assert gap.last_id >= missed[COINBASE]
    coinbase_ids = [r["trade_id"] for r in rows[COINBASE]]
    hole = list(range(gap.first_id, gap.last_id + 1))
    assert not set(hole) & set(coinbase_ids)
    assert sorted(coinbase_ids + hole) == list(range(coinbase_ids[0], coinbase_ids[-1] + 1))
    assert gap.after_ns is not None and gap.until_ns is not None
    assert gap.after_ns < gap.until_ns
    assert COINBASE in gap.text() and f"{gap.first_id}..{gap.last_id}" in gap.text()
    # What an operator sees: the hole counted per instrument, and landing ready again
    assert f'sidecar_landing_unfilled_gaps_total{{symbol="{COINBASE}"}} 1.0' in metrics
    assert f'sidecar_landing_unfilled_trades_total{{symbol="{COINBASE}"}} {len(hole)}.0' in metrics
    assert BINANCE not in "".join(line for line in metrics.splitlines() if "unfilled" in line)
    assert "sidecar_landing_paused 0.0" in metrics
    assert not [reason for reason in ready.reasons if "landing" in reason], ready.reasons
