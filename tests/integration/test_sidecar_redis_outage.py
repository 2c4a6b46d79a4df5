"""A Redis outage under a running sidecar: the event loop never waits on the store.

The sidecar reads its online vectors from a real redis-server, which this test stops for longer
than one read's client retries (redis-py sleeps between reconnects: 10 to 12 s a read once blocked
the loop). Throughout the outage the API answers, the predictions say which level serves and
why, and the market feed keeps landing every trade; when Redis returns, level 1 serves again."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import aiohttp
import polars as pl
import pytest

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.fallback import FallbackBudgets, FallbackLevel
from streaming.online import open_feature_store
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.test_sidecar import champion, exchange_trades
from tests.services import free_port
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.instruments import path_name
from trading_assets.lib.lakehouse.landing import read_landed_trades
from trading_assets.servers import redis_server

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SYMBOLS = ("BTCUSDT", "ETHUSDT")
INSTRUMENTS = tuple(f"BINANCE:{s}" for s in SYMBOLS)  # the sidecar's
OUTAGE_S = 15.0  # longer than one blocked read took on the old code
POLL_TIMEOUT_S = 2.0


@pytest.fixture
def market():
    with run_simulator_in_thread(symbols=list(SYMBOLS), seed=11, trades_per_day=2_000_000) as sim:
        yield sim


async def _answers(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """One round of the API: every endpoint must answer within the client's timeout."""
    timeout = aiohttp.ClientTimeout(total=POLL_TIMEOUT_S)
    async with http.get(f"{base}/health", timeout=timeout) as health:
        assert health.status == 200
    async with http.get(f"{base}/ready", timeout=timeout) as ready:
        readiness = await ready.json()
    async with http.get(f"{base}/predictions/latest", timeout=timeout) as latest:
        predictions = await latest.json()
    return {"ready": readiness, "latest": predictions}


async def _until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _levels(sidecar: Sidecar) -> dict[str, FallbackLevel]:
    return {s: d.level for s, d in sidecar.decisions.items()}


async def test_a_redis_outage_degrades_the_sidecar_without_blocking_it_and_loses_no_trade(
    tmp_path, market
):
    # Arrange: a sidecar on a real Redis online store, serving a champion at level 1
    with redis_server(appendonly=False) as redis:
        data = tmp_path / "data"
        tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
        champion(tracking, tmp_path / "artifacts")
        config = SidecarConfig(
            instruments=INSTRUMENTS,
            ws_base_url=market.ws_url,
            rest_base_url=market.http_url,
            data_root=data,
            tracking_uri=tracking,
            api_port=free_port(),
            predict_every_s=0.5,
            model_poll_s=0.5,
            redis_connection_string=redis.connection_string,
            fallback_budgets=FallbackBudgets(min_coverage=0.0, recover_after_s=1.0),
        )
        store = open_feature_store(config)
        assert store.config.online_store.type == "redis"
        apply_definitions(store, load_definitions())
        sidecar = Sidecar(config, store)
        base = f"http://{config.api_host}:{config.api_port}"
        task = asyncio.create_task(sidecar.run())
        try:
            await _until(
                lambda: (
                    set(_levels(sidecar).values()) == {FallbackLevel.ONLINE}
                    and len(_levels(sidecar)) == len(INSTRUMENTS)
                ),
                90,
                "every instrument served from Redis (level 1)",
            )
            stalls_before = sidecar.loop_watch.stalls._value.get()
            trades_before = {s: sidecar.metrics.messages.of(s).trades for s in INSTRUMENTS}

            # Act: Redis goes away for longer than one read's retries; the API is polled
            redis.stop()
            seen: list[dict[str, Any]] = []
            async with aiohttp.ClientSession() as http:
                stopped = time.monotonic()
                while time.monotonic() - stopped < OUTAGE_S:
                    seen.append(await _answers(http, base))
                    await asyncio.sleep(0.25)
                # Per instrument: the synthetic tapes' activity follows the hour of the day, and
                # one instrument can be quiet while the other trades.
                trades_during = {
                    s: sidecar.metrics.messages.of(s).trades - trades_before[s] for s in INSTRUMENTS
                }
                metrics_during = await (await http.get(f"{base}/metrics")).text()
                redis.start()
                await _until(
                    lambda: set(_levels(sidecar).values()) == {FallbackLevel.ONLINE},
                    60,
                    "level 1 again once Redis is back",
                )
                after = await _answers(http, base)
                metrics_after = await (await http.get(f"{base}/metrics")).text()
            stalls = sidecar.loop_watch.stalls._value.get() - stalls_before
        finally:
            sidecar.stop()
            await asyncio.wait_for(task, 60)

    # Assert: the loop never stalled, and every poll of the outage was answered in time
    assert stalls == 0
    assert len(seen) >= OUTAGE_S / (POLL_TIMEOUT_S + 0.25)
    # ...the predictions said which level served and why, and none came from the store
    last = seen[-1]["latest"]
    assert isinstance(last, dict) and set(last) == set(INSTRUMENTS)
    for prediction in last.values():
        assert prediction["fallback_level"] > FallbackLevel.ONLINE
        assert "online store" in prediction["reason"]
    assert "sidecar_online_store_up 0.0" in metrics_during
    assert "sidecar_online_store_up 1.0" in metrics_after
    assert all(p["fallback_level"] == FallbackLevel.ONLINE for p in after["latest"].values())
    # ...and the feed went on: trades kept arriving, and every one was landed once
    assert sum(trades_during.values()) > 0
    for instrument, symbol in zip(INSTRUMENTS, SYMBOLS, strict=True):
        days = sorted(
            p.name for p in (data / "landing" / "trades" / path_name(instrument)).iterdir()
        )
        now = dt.datetime.now(dt.UTC)
        landed = pl.concat(
            [
                read_landed_trades(
                    data / "landing", instrument, dt.date.fromisoformat(d), now
                ).bronze
                for d in days
            ]
        )
        ids = landed["id"].cast(pl.Int64).sort()
        assert ids.diff().drop_nulls().eq(1).all()  # contiguous, no duplicates: nothing lost
        assert ids.len() > trades_during[instrument] / 10
        first = exchange_trades(market.http_url, symbol, int(ids[0]), 1)
        assert [t["id"] for t in first] == [ids[0]]
