"""The whole sidecar against the simulator: feed → landing + live features → online store →
@champion ONNX model → risk → predictions on the API, then a graceful shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import polars as pl
import pytest
import xgboost as xgb

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.fallback import FallbackBudgets, FallbackLevel
from streaming.online import open_feature_store
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import register_booster
from tests.services import free_port
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.feature_store.spec import TRAINING_SERVICE, service_features
from trading_assets.lib.instruments import path_name
from trading_assets.lib.lakehouse.landing import read_landed_trades

INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
SYMBOLS = ("BTCUSDT", "ETHUSDT")  # the simulator's, as Binance spells them
MIN_TRADES = 21
RUN_S = 6.0


def champion(tracking_uri: str, artifacts: Path) -> str:
    """A small model over the service's features, registered and aliased @champion."""
    names = service_features(TRAINING_SERVICE)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, len(names))).astype(np.float32)
    y = (1e-3 * x[:, 0] + 1e-4 * rng.normal(size=500)).astype(np.float32)
    booster = xgb.train(
        {"max_depth": 3, "nthread": 1, "seed": 0},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=10,
    )
    return register_booster(tracking_uri, artifacts, booster, names, "champion")


@pytest.fixture(scope="module")
def market():
    with run_simulator_in_thread(symbols=list(SYMBOLS), seed=5, trades_per_day=3_000_000) as sim:
        yield sim


def exchange_trades(base_url: str, symbol: str, from_id: int, limit: int) -> list[dict]:
    """The simulator's own record of the trades from ``from_id`` (historicalTrades)."""
    response = httpx.get(
        f"{base_url}/api/v3/historicalTrades",
        params={"symbol": symbol, "fromId": from_id, "limit": limit},
    )
    response.raise_for_status()
    return response.json()


def pushed_every_instrument(sidecar: Sidecar) -> bool:
    """Whether the online writer has pushed a row of each instrument. Rows of an instrument's
    first seconds hold no value yet (every window is still warming up) and are not pushed."""
    return all(sidecar.online_reader.source(i) is not None for i in INSTRUMENTS)


def champion_served_every_instrument(sidecar: Sidecar) -> bool:
    """Whether each instrument's latest prediction came from a model: the first wait for the
    model watcher process (started with the sidecar) to mirror the @champion."""
    latest = sidecar.hub.latest()
    return all(i in latest and latest[i].model_version for i in INSTRUMENTS)


def received_trades_of_every_instrument(sidecar: Sidecar, at_least: int) -> bool:
    """Whether the feed delivered ``at_least`` trades of each instrument (the synthetic tape's
    arrivals are bursty, and in its quiet hours a few seconds can bring one a handful)."""
    counts = sidecar.metrics.messages.by_symbol
    return all(i in counts and counts[i].trades >= at_least for i in INSTRUMENTS)


async def run_sidecar(sidecar: Sidecar, seconds: float, max_extra_s: float = 60.0) -> dict:
    """Run for ``seconds`` and on until every instrument has a row online, a champion prediction and
    ``MIN_TRADES`` trades received (at most ``max_extra_s`` more); return what the API served
    just before stopping."""
    task = asyncio.create_task(sidecar.run())
    try:
        await asyncio.sleep(seconds)
        deadline = asyncio.get_running_loop().time() + max_extra_s
        while asyncio.get_running_loop().time() < deadline and not (
            pushed_every_instrument(sidecar)
            and champion_served_every_instrument(sidecar)
            and received_trades_of_every_instrument(sidecar, MIN_TRADES)
        ):
            await asyncio.sleep(0.25)
        async with aiohttp.ClientSession() as http:
            base = f"http://{sidecar.config.api_host}:{sidecar.config.api_port}"
            async with http.get(f"{base}/predictions/latest") as response:
                latest = await response.json()
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
            async with http.get(f"{base}/ready") as response:
                ready = response.status
    finally:
        sidecar.stop()
        await asyncio.wait_for(task, 30)
    return {"latest": latest, "metrics": metrics, "ready": ready}


async def test_sidecar_lands_features_predicts_and_shuts_down_cleanly(tmp_path, market):
    data = tmp_path / "data"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version = champion(tracking, tmp_path / "artifacts")
    config = SidecarConfig(
        instruments=INSTRUMENTS,
        ws_base_url=market.ws_url,
        rest_base_url=market.http_url,
        data_root=data,
        tracking_uri=tracking,
        api_port=free_port(),
        predict_every_s=0.5,
        model_poll_s=0.5,
        # Seconds of data fill only the shortest windows; serve them rather than wait 15 min.
        fallback_budgets=FallbackBudgets(min_coverage=0.0),
    )
    store = open_feature_store(config)
    apply_definitions(store, load_definitions())
    sidecar = Sidecar(config, store)

    served = await run_sidecar(sidecar, RUN_S)

    # Predictions: from the champion, for every instrument, at a working fallback level.
    predictions = served["latest"]
    assert set(predictions) == set(INSTRUMENTS)
    for prediction in predictions.values():
        assert prediction["model_version"] == version
        assert -1 <= prediction["signal"] <= 1 and 0 <= prediction["confidence"] <= 1
        assert prediction["fallback_level"] < FallbackLevel.SAFE
    assert served["ready"] == 200
    assert (
        'sidecar_predictions_total{role="champion",symbol="BINANCE:BTCUSDT"}' in served["metrics"]
    )

    # Landing: sealed segments only, trade ids contiguous and equal to the exchange's.
    landing = data / "landing"
    assert not list(landing.rglob("*.open"))
    for instrument, symbol in zip(INSTRUMENTS, SYMBOLS, strict=True):
        days = sorted(p.name for p in (landing / "trades" / path_name(instrument)).iterdir())
        now = dt.datetime.now(dt.UTC)
        landed = pl.concat(
            [
                read_landed_trades(landing, instrument, dt.date.fromisoformat(d), now).bronze
                for d in days
            ]
        ).sort("id")
        ids = landed["id"].cast(pl.Int64)
        assert ids.len() >= MIN_TRADES
        assert ids.diff().drop_nulls().eq(1).all()  # contiguous, no duplicates
        exchange = exchange_trades(market.http_url, symbol, int(ids[0]), min(ids.len(), 1000))
        assert landed["price"].head(len(exchange)).cast(pl.Float64).to_list() == [
            float(t["price"]) for t in exchange
        ]
        assert ids.head(len(exchange)).to_list() == [t["id"] for t in exchange]

    # Online store: a row of each instrument was pushed through the push sources, no older
    # than the run, and every submitted row is accounted for.
    for instrument in INSTRUMENTS:
        read = sidecar.online_reader.source(instrument)  # the store itself, the sidecar stopped
        assert read is not None
        minute_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        assert read.event_time_ns >= minute_ago.timestamp() * 1e9
    stats = sidecar.online_writer.stats()
    assert stats.rows_written >= len(INSTRUMENTS) and stats.errors == 0 and stats.rows_pending == 0
    predictions_landed = list((landing / "predictions").rglob("*.jsonl"))
    assert predictions_landed
