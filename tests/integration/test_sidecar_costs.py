"""The sidecar trades by the evaluation's rule: a predicted return is acted on only when it pays
the round trip (fees plus the spread), then the risk engine sizes it and may still block it."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import xgboost as xgb

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.fallback import FallbackDecision, FallbackLevel
from streaming.inference import ServingModel
from streaming.model_files import LocalModel
from streaming.predictions import decode_prediction
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import (
    api_url,
    land_history,
    register_decisive_model,
    served_until,
    start_sidecar,
    stop_sidecar,
    trading_config,
)
from trading_assets.lib.feature_store.spec import SERVICES, service_features
from trading_assets.lib.features import BOOK
from trading_assets.lib.lakehouse.landing_layout import PAPER_DECISIONS_KIND, PAPER_FILLS_KIND
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.policy import DEFAULT_SIGNAL_SCALE, FEE_BP, SPREAD_FEATURE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the sidecar's, Binance spot's SYMBOL
BOOK_SERVICE = next(s for s, groups in SERVICES.items() if BOOK in groups and s.endswith("v2"))


def constant_model(predicted_return: float) -> ServingModel:
    """A real ONNX model that predicts ``predicted_return`` whatever the features."""
    names = service_features(BOOK_SERVICE)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(names))).astype(np.float32)
    y = np.full(200, predicted_return, np.float32)
    params = {"max_depth": 1, "nthread": 1, "base_score": predicted_return}
    booster = xgb.train(params, xgb.DMatrix(x, label=y, feature_names=names), num_boost_round=1)
    artifact = LocalModel("1", export_onnx(booster, names), names, {})
    return ServingModel("champion", artifact, DEFAULT_SIGNAL_SCALE)


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A sidecar built on the book service, not running: decisions are handed to it."""
    config = SidecarConfig(
        instruments=(INSTRUMENT,),
        ws_base_url="ws://unused",
        rest_base_url="http://unused",
        data_root=tmp_path,
        tracking_uri=None,
        feature_service=BOOK_SERVICE,
    )
    built = Sidecar(config)
    try:
        yield built
    finally:
        for writer in built.writers.values():
            writer.close()
        built.online_writer.close()


def fresh_decision(sidecar: Sidecar, now_ns: int, spread_bps: float | None) -> FallbackDecision:
    """A fresh, complete vector (calm volatility), with or without a usable spread."""
    features = dict.fromkeys(sidecar.feature_order, 0.0)
    features["rv_60s"] = 0.001
    features[SPREAD_FEATURE] = math.nan if spread_bps is None else spread_bps
    return FallbackDecision(
        INSTRUMENT, now_ns, FallbackLevel.ONLINE, features, now_ns, 0.0, 1.0, "online"
    )


@pytest.mark.parametrize(
    ("predicted", "spread_bps", "trades"),
    [
        (0.0015, None, False),  # 15 bp < 2 × 10 bp fees + the assumed 1 bp spread
        (0.0025, None, True),  # 25 bp > 21 bp
        (-0.0025, None, True),
        (0.0025, 6.0, False),  # the book's 6 bp spread makes the round trip 26 bp
        (0.0025, 4.0, True),  # 24 bp
    ],
)
def test_should_trade_comes_from_the_predicted_return_net_of_costs(
    sidecar, predicted, spread_bps, trades
):
    # Arrange
    now = time.time_ns()
    model = constant_model(predicted)
    round_trip = 2 * FEE_BP + (1.0 if spread_bps is None else spread_bps)

    # Act
    served = sidecar.trader.prediction(
        INSTRUMENT, now, fresh_decision(sidecar, now, spread_bps), model, drives=True, read_s=0.0
    )

    # Assert
    assert served.predicted_return == pytest.approx(predicted, abs=1e-7)
    assert served.should_trade is trades
    assert f"round trip {round_trip:.1f} bp" in served.reason
    if trades:
        assert math.copysign(1.0, served.size_fraction) == math.copysign(1.0, predicted)
        assert sidecar.risk.positions[INSTRUMENT].size_fraction == served.size_fraction
    else:
        assert served.size_fraction == 0.0 and "within the round-trip cost" in served.reason
        assert INSTRUMENT not in sidecar.risk.positions


def test_a_trade_the_rule_allows_is_still_blocked_by_stale_data(sidecar):
    now = time.time_ns()
    stale = fresh_decision(sidecar, now, 1.0)
    stale = FallbackDecision(
        INSTRUMENT, now, FallbackLevel.SILVER, stale.features, now, 0.0, 0.5, "x"
    )

    served = sidecar.trader.prediction(INSTRUMENT, now, stale, constant_model(0.005), True, 0.0)

    assert not served.should_trade and "stale data" in served.reason


async def test_a_running_sidecar_trades_only_the_model_whose_prediction_pays_its_costs(tmp_path):
    # Arrange: the champion predicts 15 bp, below the 21 bp round trip; the canary 50 bp; each
    # drives about half the decisions on the same market
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register_decisive_model(tracking, tmp_path / "artifacts", "champion", 0.0015)
    register_decisive_model(tracking, tmp_path / "artifacts", "canary", 0.005)
    with run_simulator_in_thread(symbols=[SYMBOL], seed=5, trades_per_day=3_000_000) as sim:
        config = trading_config(tmp_path / "data", sim, (INSTRUMENT,), tracking, canary_share=0.5)
        await land_history(sim.http_url, config.landing_root, (INSTRUMENT,))
        sidecar, task = start_sidecar(config)
        try:
            async with aiohttp.ClientSession() as http:
                await served_until(http, config, INSTRUMENT, lambda p: p["should_trade"], 90)
            # Enough decisions of each driver: which one drives is a hash of the second, so a
            # fixed wait (or a count of the canary's trades alone) sometimes held only a few of
            # one driver's decisions. Forty decisions hold about twenty of each.
            deadline = time.monotonic() + 120
            counters = sidecar.risk.counters
            while time.monotonic() < deadline and (
                counters["decisions"] < 40 or counters["trades"] < 10
            ):
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.0)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{api_url(config)}/paper") as response:
                    paper = await response.json()
                async with http.get(f"{api_url(config)}/metrics") as response:
                    metrics = await response.text()
        finally:
            await stop_sidecar(sidecar, task)

    # Act: every decision the sidecar logged
    logged = [
        decode_prediction(line)
        for segment in sorted((config.landing_root / "predictions").rglob("*.jsonl"))
        for line in segment.read_bytes().splitlines()
        if line
    ]
    scored = [p for p in logged if p.model_version]  # not the ones before a model was loaded
    driving = [p for p in scored if not p.reason.endswith("logged, not acted on")]
    fresh = [p for p in driving if p.fallback_level <= FallbackLevel.IMPUTED]

    # Assert: the champion's decisions were never trades, and said why; the canary's were
    by_champion = [p for p in fresh if p.role == "champion"]
    by_canary = [p for p in fresh if p.role == "canary"]
    assert len(by_champion) > 5 and len(by_canary) > 5
    assert not any(p.should_trade for p in by_champion)
    assert all(0.0 < p.predicted_return < 0.0021 for p in by_champion)
    assert all("within the round-trip cost" in p.reason for p in by_champion)
    assert sum(p.should_trade for p in by_canary) > 5
    assert all("round trip 21.0 bp" in p.reason for p in by_canary)
    # ... and each role's paper account traded every one of its predictions alike: the
    # champion's never, the canary's on the live market, landed and shown on /paper, /metrics
    decisions, fills = (
        landed_lines(config, PAPER_DECISIONS_KIND),
        landed_lines(config, PAPER_FILLS_KIND),
    )
    assert {d["role"] for d in decisions} == {"champion", "canary"}
    assert {f["role"] for f in fills} == {"canary"} and len(fills) > 5
    accounts = paper["accounts"]
    assert accounts["champion"]["fills"] == 0 and accounts["canary"]["fills"] > 5
    assert accounts["canary"]["fees"] > 0
    assert 'sidecar_paper_account_fills_total{role="canary"' in metrics


def landed_lines(config: SidecarConfig, kind: str) -> list[dict]:
    return [
        json.loads(line)
        for segment in sorted((config.landing_root / kind).rglob("*.jsonl"))
        for line in segment.read_bytes().splitlines()
        if line
    ]
