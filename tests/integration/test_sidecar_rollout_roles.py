"""@champion, @canary and @shadow served side by side in a running sidecar, from real MLflow
aliases: the canary drives its configured share of decisions at half size, the champion the
rest at full size, and the shadow is scored and logged on every tick but never trades."""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streaming.predictions import Prediction, decode_prediction
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import (
    api_url,
    land_history,
    latest,
    register_decisive_model,
    served_until,
    start_sidecar,
    stop_sidecar,
    trading_config,
)
from trading_assets.lib.risk import RiskLimits, position_fraction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
INSTRUMENTS = tuple(f"BINANCE:{s}" for s in SYMBOLS)  # the sidecar's
CANARY_SHARE = 0.5
TRADING_S = 15.0
NOT_ACTED_ON = "logged, not acted on"


def landed_predictions(landing: Path) -> list[Prediction]:
    lines = [
        line
        for segment in sorted((landing / "predictions").rglob("*.jsonl"))
        for line in segment.read_bytes().splitlines()
        if line
    ]
    return [decode_prediction(line) for line in lines]


def metric_totals(text: str, name: str) -> dict[str, float]:
    """Sum of a metric's samples per ``role`` label."""
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                totals[sample.labels["role"]] += sample.value
    return dict(totals)


def full_size(prediction: Prediction) -> float:
    """The risk engine's size for this signal and confidence, before the canary's halving."""
    limits = RiskLimits()
    size = position_fraction(
        prediction.signal, prediction.confidence, limits.kelly_fraction, limits.payoff_ratio,
        limits.max_position_fraction,
    )  # fmt: skip
    return size * (limits.reducing_scale if "reducing:" in prediction.reason else 1.0)


async def test_canary_drives_its_share_at_half_size_and_the_shadow_never_trades(tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    versions = {
        role: register_decisive_model(tracking, tmp_path / "artifacts", role, predicted_return)
        for role, predicted_return in (("champion", 0.005), ("canary", 0.004), ("shadow", -0.005))
    }
    served: list[dict] = []
    with run_simulator_in_thread(symbols=list(SYMBOLS), seed=5, trades_per_day=3_000_000) as sim:
        config = trading_config(
            tmp_path / "data", sim, INSTRUMENTS, tracking, canary_share=CANARY_SHARE
        )
        await land_history(sim.http_url, config.landing_root, INSTRUMENTS)
        sidecar, task = start_sidecar(config)
        try:
            async with aiohttp.ClientSession() as http:
                for instrument in INSTRUMENTS:
                    await served_until(http, config, instrument, lambda p: p["should_trade"], 90)
                for _ in range(int(TRADING_S / 0.25)):
                    for instrument in INSTRUMENTS:
                        prediction = await latest(http, config, instrument)
                        if prediction is not None:
                            served.append(prediction)
                    await asyncio.sleep(0.25)
                async with http.get(f"{api_url(config)}/metrics") as response:
                    metrics = await response.text()
        finally:
            await stop_sidecar(sidecar, task)
    logged = landed_predictions(config.landing_root)

    ticks: dict[tuple[str, int], list[Prediction]] = defaultdict(list)
    for prediction in logged:
        ticks[prediction.symbol, prediction.timestamp].append(prediction)
    scored_by_all = [t for t in ticks.values() if sorted(p.role for p in t) == sorted(versions)]
    assert len(scored_by_all) > 100
    drivers = []
    for tick in scored_by_all:
        driving = [p for p in tick if not p.reason.endswith(NOT_ACTED_ON)]
        assert len(driving) == 1, tick  # exactly one model drives each decision
        drivers.append(driving[0])

    # The shadow: on every tick, in the log, never trading, never served.
    shadows = [p for p in logged if p.role == "shadow"]
    assert len(shadows) >= len(scored_by_all)
    assert all(p.model_version == versions["shadow"] for p in shadows)
    assert all(not p.should_trade and p.size_fraction == 0.0 for p in shadows)
    assert all(p.reason == f"shadow: {NOT_ACTED_ON}" for p in shadows)
    assert Counter(p.role for p in drivers)["shadow"] == 0
    assert served and all(p["role"] != "shadow" for p in served)

    # The canary: about its share of the decisions; what it trades, at half the size. The
    # driver is drawn once per symbol and second (four ticks share it), so the draws counted
    # are the distinct seconds, each with one driver.
    per_second: dict[tuple[str, int], set[str]] = defaultdict(set)
    for p in drivers:
        per_second[p.symbol, p.timestamp // 1_000_000_000].add(p.role)
    assert all(len(roles) == 1 for roles in per_second.values()), per_second
    draws = len(per_second)
    canary_share = sum(roles == {"canary"} for roles in per_second.values()) / draws
    # Four binomial standard deviations: a fair draw fails this about once in 16,000 runs.
    tolerance = 4 * math.sqrt(CANARY_SHARE * (1 - CANARY_SHARE) / draws)
    assert abs(canary_share - CANARY_SHARE) <= tolerance, (canary_share, draws)
    trades = [p for p in drivers if p.should_trade and "gross exposure" not in p.reason]
    by_canary = [p for p in trades if p.role == "canary"]
    by_champion = [p for p in trades if p.role == "champion"]
    assert len(by_canary) > 10 and len(by_champion) > 10
    for p in by_canary:
        assert p.size_fraction == pytest.approx(0.5 * full_size(p), rel=1e-9)
    for p in by_champion:
        assert p.size_fraction == pytest.approx(full_size(p), rel=1e-9)
    # Served as latest: only the prediction that drove, so a served canary is a trading one.
    assert {p["role"] for p in served} == {"champion", "canary"}
    assert all(not p["reason"].endswith(NOT_ACTED_ON) for p in served)

    # One latency observation per prediction, whichever model made it.
    counted = metric_totals(metrics, "sidecar_prediction_latency_seconds_count")
    assert counted == metric_totals(metrics, "sidecar_predictions_total")
