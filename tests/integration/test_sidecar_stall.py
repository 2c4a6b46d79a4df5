"""A feed that stalls while its connection stays open: the sidecar must stop trading on the
silence and trade again once data flows."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from streaming.fallback import FallbackLevel
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import (
    STALL_TEST_BUDGETS,
    STALL_TEST_TRADES_PER_DAY,
    land_history,
    register_decisive_model,
    served_until,
    start_sidecar,
    stop_sidecar,
    trading_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the sidecar's, Binance spot's SYMBOL
STALL_S = 12.0
TRADES_PER_DAY = STALL_TEST_TRADES_PER_DAY
BUDGETS = STALL_TEST_BUDGETS


def trading_on_fresh_data(prediction: dict) -> bool:
    return prediction["should_trade"] and prediction["fallback_level"] == FallbackLevel.ONLINE


def in_safe_mode(prediction: dict) -> bool:
    return prediction["fallback_level"] == FallbackLevel.SAFE


async def stall_the_feed(http: aiohttp.ClientSession, faults_url: str) -> None:
    """Stall the open connection once, then clear the plan so a reconnect would not stall."""
    plan = {"stall_after_messages": 1, "stall_seconds": STALL_S}
    async with http.post(faults_url, json=plan) as response:
        assert response.status == 200
    for _ in range(100):  # the next message the connection sends starts the stall
        async with http.get(faults_url) as response:
            if (await response.json())["applied"].get("stalled") == 1:
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the stall never started")
    async with http.delete(faults_url) as response:
        assert response.status == 200


async def test_a_stalled_feed_stops_trading_with_a_stale_data_reason_and_recovers(tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = register_decisive_model(tracking, tmp_path / "artifacts", "champion")
    seen: list[dict] = []
    with run_simulator_in_thread(symbols=[SYMBOL], seed=5, trades_per_day=TRADES_PER_DAY) as market:
        config = trading_config(
            tmp_path / "data", market, (INSTRUMENT,), tracking, fallback_budgets=BUDGETS
        )
        await land_history(market.http_url, config.landing_root, (INSTRUMENT,))
        sidecar, task = start_sidecar(config)
        try:
            async with aiohttp.ClientSession() as http:
                before = await served_until(
                    http, config, INSTRUMENT, trading_on_fresh_data, 60, seen
                )
                await stall_the_feed(http, f"{market.http_url}/_sim/faults")
                stalled = await served_until(http, config, INSTRUMENT, in_safe_mode, STALL_S, seen)
                after = await served_until(
                    http, config, INSTRUMENT, trading_on_fresh_data, STALL_S + 40, seen
                )
                reconnects = (
                    dict(sidecar.feeds.feeds["BINANCE"].stats.reconnects) if sidecar.feeds else None
                )
        finally:
            await stop_sidecar(sidecar, task)

    assert before["model_version"] == version
    assert not stalled["should_trade"] and stalled["size_fraction"] == 0.0
    assert "stale data: fallback level 5 > 3" in stalled["reason"]
    # The clock closes no second past the newest message, so the online vector ages with the
    # silence (and is judged by the newest message's age besides).
    assert re.search(r"online: (vector|newest market message) [0-9.]+ s old", stalled["reason"])
    assert "live: last message" in stalled["reason"]
    # Once in safe mode the sidecar stayed there, not trading, until data flowed again; on the
    # way down the levels went step by step rather than jumping from fresh data to nothing.
    start = seen.index(before)
    first_safe = start + next(i for i, p in enumerate(seen[start:]) if in_safe_mode(p))
    last_safe = max(i for i, p in enumerate(seen) if in_safe_mode(p))
    assert all(in_safe_mode(p) and not p["should_trade"] for p in seen[first_safe : last_safe + 1])
    assert last_safe < seen.index(after)
    levels = [p["fallback_level"] for p in seen[start : first_safe + 1]]
    assert levels == sorted(levels)
    assert after["fallback_level"] == FallbackLevel.ONLINE and after["should_trade"]
    assert reconnects == {}  # the connection stayed open throughout: a stall, not a drop
