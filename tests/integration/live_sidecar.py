"""Helpers for tests that run a whole sidecar against the simulator and trade: a registered
model with a decisive signal, and a landed trade a minute and a half back, so the sidecar's
restart path gap-fills enough history to warm the 60 s windows (``rv_60s`` gates every trade)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import xgboost as xgb

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.fallback import FallbackBudgets
from streaming.landing import TRADES_KIND, LandingWriter
from streaming.online import open_feature_store
from streaming.venues.binance.client import AsyncBinanceRestClient
from streaming.venues.binance.history import fetch_trades
from tests.services import free_port
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.feature_store.spec import TRAINING_SERVICE, service_features
from trading_assets.lib.instruments import parse_instrument
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.registry import record_gate_verdict, register_model, set_alias

HISTORY_S = 90
# For tests that stall the feed: three seconds of silence end levels 1 and 2, four more end the
# carried vector (safe mode after 7 s), and data flowing for 5 s brings level 1 back. The budgets
# are not stretched by the feed's pace. The synthetic tape's arrivals are bursty, so such tests run
# it at 6M trades a day, where a silence over 3 s comes 1–2 times an hour (at 3M, with a 2 s
# budget, one came about every minute and could break the recovery a test waits for).
STALL_TEST_TRADES_PER_DAY = 6_000_000
STALL_TEST_BUDGETS = FallbackBudgets(
    min_coverage=0.0,
    online_max_latency_s=0.25,
    live_max_age_s=3.0,
    impute_max_age_s=4.0,
    quiet_max_s=0.0,
    recover_after_s=5.0,
)
Json = dict[str, Any]


def register_decisive_model(
    tracking_uri: str, artifacts: Path, alias: str, predicted_return: float = 0.005
) -> str:
    """A model predicting about ``predicted_return`` whatever the features (five label sigmas
    of the default signal scale, so its signal clears any sizing minimum), aliased ``alias``."""
    names = service_features(TRAINING_SERVICE)
    rng = np.random.default_rng(len(alias))
    x = rng.normal(size=(300, len(names))).astype(np.float32)
    y = (predicted_return + 1e-5 * rng.normal(size=300)).astype(np.float32)
    booster = xgb.train(
        {"max_depth": 2, "nthread": 1, "seed": 0, "base_score": predicted_return},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=3,
    )
    return register_booster(tracking_uri, artifacts, booster, names, alias)


def register_booster(
    tracking_uri: str, artifacts: Path, booster: xgb.Booster, names: list[str], alias: str
) -> str:
    """``booster`` exported to ONNX, registered as a version of ``signal`` and aliased."""
    version = register_model(
        tracking_uri,
        "signal",
        export_onnx(booster, names),
        names,
        TRAINING_SERVICE,
        dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 2, tzinfo=dt.UTC),
        metrics={},
        params={},
        artifact_location=artifacts.as_uri(),
    )
    record_gate_verdict(tracking_uri, "signal", version.version, True, "decisive test model")
    set_alias(tracking_uri, "signal", alias, version.version)
    return str(version.version)


async def land_history(rest_url: str, landing_root: Path, instruments: tuple[str, ...]) -> None:
    """Land, as a previous run would have, the trade just before ``HISTORY_S`` ago (of Binance
    spot instruments, whose REST API the simulator serves at ``rest_url``)."""
    start_ms = time.time_ns() // 1_000_000 - HISTORY_S * 1000
    writer = LandingWriter(landing_root, TRADES_KIND)
    try:
        async with AsyncBinanceRestClient(rest_url) as rest:
            for instrument in instruments:
                venue, symbol = parse_instrument(instrument)
                assert venue == "BINANCE", instrument
                first = httpx.get(
                    f"{rest_url}/api/v3/aggTrades",
                    params={"symbol": symbol, "startTime": start_ms, "limit": 1},
                    timeout=60,  # the first request builds the simulator's day tape
                ).json()[0]["f"]
                (landed,) = await fetch_trades(rest, symbol, first - 1, first - 1)
                writer.write(landed)
    finally:
        writer.close()


def trading_config(
    data: Path, market: Any, instruments: tuple[str, ...], tracking_uri: str, **overrides: Any
) -> SidecarConfig:
    """A sidecar on the simulator, predicting four times a second; the read budget is loose
    (sqlite on a shared test machine), coverage is not required (the 5 and 15 min windows
    cannot warm in a test)."""
    budgets = overrides.pop(
        "fallback_budgets", FallbackBudgets(min_coverage=0.0, online_max_latency_s=0.25)
    )
    return SidecarConfig(
        instruments=instruments,
        ws_base_url=market.ws_url,
        rest_base_url=market.http_url,
        data_root=data,
        tracking_uri=tracking_uri,
        api_port=free_port(),
        predict_every_s=0.25,
        model_poll_s=0.5,
        fallback_budgets=budgets,
        **overrides,
    )


def venues_config(
    market: Any, instruments: tuple[str, ...], data: Path, **overrides: Any
) -> SidecarConfig:
    """A sidecar without models on every venue of the simulator, predicting twice a second;
    coverage is not required (the 5 and 15 min windows cannot warm in a test)."""
    return SidecarConfig(
        instruments=instruments,
        ws_base_url=market.ws_url,
        rest_base_url=market.http_url,
        venue_urls={
            "COINBASE": (market.coinbase_ws_url, ""),
            "KRAKEN": (market.kraken_ws_url, ""),
        },
        data_root=data,
        tracking_uri=None,
        api_port=free_port(),
        predict_every_s=0.5,
        fallback_budgets=FallbackBudgets(min_coverage=0.0),
        **overrides,
    )


def applied_sidecar(config: SidecarConfig) -> Sidecar:
    """A sidecar on a store with the repository applied (not running)."""
    store = open_feature_store(config)
    apply_definitions(store, load_definitions())
    return Sidecar(config, store)


def start_sidecar(config: SidecarConfig) -> tuple[Sidecar, asyncio.Task[None]]:
    """A sidecar on a store with the repository applied, running as a task."""
    sidecar = applied_sidecar(config)
    return sidecar, asyncio.create_task(sidecar.run())


async def stop_sidecar(sidecar: Sidecar, task: asyncio.Task[None]) -> None:
    sidecar.stop()
    await asyncio.wait_for(task, 30)


def api_url(config: SidecarConfig) -> str:
    return f"http://{config.api_host}:{config.api_port}"


async def latest(http: aiohttp.ClientSession, config: SidecarConfig, symbol: str) -> Json | None:
    """The prediction the API serves for ``symbol`` (an instrument id) now (None before the
    first, or before the API listens)."""
    try:
        url = f"{api_url(config)}/predictions/latest"
        async with http.get(url, params={"symbol": symbol}) as response:
            return await response.json() if response.status == 200 else None
    except aiohttp.ClientConnectionError:
        return None


async def served_until(
    http: aiohttp.ClientSession,
    config: SidecarConfig,
    symbol: str,
    condition: Callable[[Json], bool],
    timeout_s: float,
    seen: list[Json] | None = None,
) -> Json:
    """Poll the served prediction until one meets ``condition``; every distinct one polled is
    appended to ``seen``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prediction = await latest(http, config, symbol)
        if prediction is not None:
            if seen is not None and (not seen or seen[-1]["timestamp"] != prediction["timestamp"]):
                seen.append(prediction)
            if condition(prediction):
                return prediction
        await asyncio.sleep(0.1)
    last = seen[-1] if seen else None
    raise AssertionError(f"no served prediction met the condition in {timeout_s} s; last {last}")
