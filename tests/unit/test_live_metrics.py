"""Live metrics: landed predictions scored against bars_1s closes (real landing files, a real
sqlite Iceberg catalog on a tmp path)."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

from streaming.config import SidecarConfig
from streaming.fallback import FallbackDecision, FallbackLevel
from streaming.inference import ServingModel
from streaming.landing import PREDICTIONS_KIND, LandingWriter
from streaming.metrics import MessageCounts
from streaming.predictions import Prediction
from streaming.trading import Trader
from trading_assets.lib.lakehouse.pipeline import to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import replace_partition
from trading_assets.lib.models.live_metrics import (
    MODEL_ERROR_REASON,
    NS,
    evaluate_live,
    read_predictions,
    role_metrics,
    score_predictions,
    served_ranges,
    served_timeline_markdown,
    write_report,
)
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.registry import LoadedModel
from trading_assets.lib.risk import RiskEngine, RiskLimits
from trading_assets.resources import IcebergCatalogResource

T0 = int(dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC).timestamp()) * NS
HORIZON = 60


def predictions_frame(rows: list[dict]) -> pl.DataFrame:
    defaults = {
        "instrument": "BINANCE:BTCUSDT",
        "model_version": "1",
        "role": "champion",
        "predicted_return": 0.0,
        "latency_ms": 1.0,
        "fallback_level": 0,
        "reason": "",
    }
    return pl.DataFrame([defaults | row for row in rows]).with_columns(
        pl.col("timestamp").cast(pl.Int64)
    )


def closes_frame(closes: dict[int, float], instrument: str = "BINANCE:BTCUSDT") -> pl.DataFrame:
    """Closes keyed by bar start second offset from T0 (bar_end = start + 1 s)."""
    return pl.DataFrame(
        {
            "instrument": [instrument] * len(closes),
            "bar_end": [T0 + (s + 1) * NS for s in closes],
            "close": list(closes.values()),
        }
    ).sort("bar_end")


def test_realized_return_uses_last_close_at_or_before_each_end_and_matures_with_the_bars():
    # Bars at seconds 0, 5 (gap 1-4 carries close 100) and 64; nothing after second 70.
    closes = closes_frame({0: 100.0, 5: 101.0, 64: 103.0, 70: 104.0})
    predictions = predictions_frame(
        [
            {"timestamp": T0 + 3 * NS, "predicted_return": 1e-4},  # start close 100 (bar 0)
            {"timestamp": T0 + 6 * NS, "predicted_return": 2e-4},  # start 101, end at 66 → 103
            {"timestamp": T0 + 30 * NS, "predicted_return": 3e-4},  # ends at 90 > bars (71)
            {"timestamp": T0 + 7 * NS, "reason": f"{MODEL_ERROR_REASON}: onnx failed"},
        ]
    )

    scored = score_predictions(predictions, closes, HORIZON).sort("timestamp")

    by_time = {row["timestamp"]: row for row in scored.iter_rows(named=True)}
    first, second = by_time[T0 + 3 * NS], by_time[T0 + 6 * NS]
    # t=3 → end 63: the newest bar ending at or before 63 s is bar 5 (ends at 6 s), close 101.
    assert first["matured"] and first["realized_return"] == pytest.approx(math.log(101 / 100))
    assert second["matured"] and second["realized_return"] == pytest.approx(math.log(103 / 101))
    assert not by_time[T0 + 30 * NS]["matured"]
    assert by_time[T0 + 30 * NS]["realized_return"] is None
    error = by_time[T0 + 7 * NS]
    assert error["is_error"] and not error["matured"]


def test_role_metrics_ic_hit_rate_latency_and_errors():
    rng = np.random.default_rng(3)
    seconds = 400
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, seconds + HORIZON + 5)))
    closes = closes_frame({s: float(p) for s, p in enumerate(prices)})
    rows = []
    for s in range(1, seconds):
        # Bar s-1 is the newest ending at or before t = s; its forward return is known exactly.
        future = math.log(prices[s - 1 + HORIZON] / prices[s - 1])
        rows.append(
            {"timestamp": T0 + s * NS, "predicted_return": future, "latency_ms": float(s % 10)}
        )
        rows.append(
            {
                "timestamp": T0 + s * NS,
                "role": "shadow",
                "model_version": "2",
                "predicted_return": -future,
                "reason": MODEL_ERROR_REASON if s % 20 == 0 else "",
            }
        )

    scored = score_predictions(predictions_frame(rows), closes, HORIZON)
    good = role_metrics(scored, "1", "champion")
    bad = role_metrics(scored, "2", "shadow")
    early = role_metrics(scored, "1", "champion", until_ns=T0 + 101 * NS)

    assert good.matured == seconds - 1 and good.ic == pytest.approx(1.0)
    assert good.hit_rate == pytest.approx(1.0)
    latencies = [float(s % 10) for s in range(1, seconds)]
    assert good.latency_p50_ms == pytest.approx(np.percentile(latencies, 50))
    assert good.latency_p95_ms == pytest.approx(np.percentile(latencies, 95))
    assert good.errors == 0 and good.error_rate == 0.0
    assert bad.ic == pytest.approx(-1.0) and bad.hit_rate == pytest.approx(0.0)
    assert bad.errors == 19 and bad.error_rate == pytest.approx(19 / (seconds - 1))
    assert bad.matured == seconds - 1 - 19  # errors never count as matured
    assert early.predictions == 100 and early.last_ns == T0 + 100 * NS


def test_served_ranges_split_when_a_version_comes_back():
    rows = [
        {"timestamp": T0 + s * NS, "model_version": v}
        for s, v in enumerate(["1", "1", "2", "2", "2", "1"])
    ]
    rows.append({"timestamp": T0 + 2 * NS, "model_version": "3", "role": "shadow"})

    ranges = served_ranges(predictions_frame(rows))

    champion = ranges.filter(pl.col("role") == "champion")
    assert champion.select("model_version", "start_ns", "end_ns", "predictions").rows() == [
        ("1", T0, T0 + NS, 2),
        ("2", T0 + 2 * NS, T0 + 4 * NS, 3),
        ("1", T0 + 5 * NS, T0 + 5 * NS, 1),
    ]
    assert ranges.filter(pl.col("role") == "shadow")["model_version"].to_list() == ["3"]


def prediction(symbol: str, t_ns: int, version: str, role: str, predicted: float) -> Prediction:
    return Prediction(
        symbol=symbol,
        timestamp=t_ns,
        signal=0.0,
        confidence=0.0,
        risk_score=0.0,
        should_trade=False,
        model_version=version,
        fallback_level=0,
        latency_ms=2.0,
        role=role,  # type: ignore[arg-type]
        predicted_return=predicted,
    )


def test_read_predictions_takes_sealed_and_open_segments_in_the_window(tmp_path: Path):
    root = tmp_path / "landing"
    writer = LandingWriter(root, PREDICTIONS_KIND, time_fields=("timestamp",), inline_poll=False)
    for s in range(10):
        writer.write(prediction("BINANCE:BTCUSDT", T0 + s * NS, "1", "champion", 1e-4))
    writer.rotate()
    for s in range(10, 15):
        writer.write(prediction("BINANCE:ETHUSDT", T0 + s * NS, "1", "champion", 1e-4))
    # No model loaded:
    writer.write(prediction("BINANCE:ETHUSDT", T0 + 15 * NS, "", "champion", 0.0))
    writer.flush()  # fsynced but still .open, as the live sidecar leaves its newest segment

    frame = read_predictions(root, T0 + 2 * NS, T0 + 20 * NS)
    only_btc = read_predictions(root, T0, T0 + 20 * NS, symbols=["binance:btcusdt"])
    writer.close()

    assert frame.height == 13  # 8 sealed BTC in the window + 5 open ETH, not the empty version
    assert frame["timestamp"].is_sorted() and frame["timestamp"].min() == T0 + 2 * NS
    assert set(frame["instrument"]) == {"BINANCE:BTCUSDT", "BINANCE:ETHUSDT"}
    assert only_btc.height == 10


def test_evaluate_live_reads_iceberg_bars_and_writes_parquet(tmp_path: Path):
    lake = IcebergCatalogResource.local(tmp_path / "iceberg").lakehouse()
    rng = np.random.default_rng(5)
    seconds = 300
    prices = 60_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, seconds)))
    day = dt.date(2024, 3, 1)
    bars = pl.DataFrame(
        {
            "trade_date": [day] * seconds,
            "instrument": ["BINANCE:BTCUSDT"] * seconds,
            "bar_start": [dt.datetime.fromtimestamp(T0 / NS + s, dt.UTC) for s in range(seconds)],
        }
    ).with_columns(
        **{c: pl.Series(prices) for c in ("open", "high", "low", "close", "vwap")},
        **{c: pl.lit(1.0) for c in ("volume", "notional", "buy_volume", "sell_volume")},
        trade_count=pl.lit(1, pl.Int64),
        first_trade_id=pl.int_range(seconds, dtype=pl.Int64),
        last_trade_id=pl.int_range(seconds, dtype=pl.Int64),
    )
    table = lake.table(BARS_1S_TABLE)
    replace_partition(table, day, "BINANCE:BTCUSDT", [to_iceberg_arrow(bars, table.schema())])
    root = tmp_path / "landing"
    with LandingWriter(root, PREDICTIONS_KIND, time_fields=("timestamp",)) as writer:
        for s in range(1, seconds):
            future = math.log(prices[min(s - 1 + HORIZON, seconds - 1)] / prices[s - 1])
            writer.write(prediction("BINANCE:BTCUSDT", T0 + s * NS, "7", "champion", future))
            writer.write(prediction("BINANCE:BTCUSDT", T0 + s * NS, "8", "shadow", -future))

    report = evaluate_live(lake, root, T0 + seconds * NS, window_s=seconds, horizon_s=HORIZON)
    metrics_path, ranges_path = write_report(report, tmp_path / "live")
    plot = served_timeline_markdown(report.ranges, report.metrics, "served")

    stored = pl.read_parquet(metrics_path).sort("role")
    assert stored.select("model_version", "role").rows() == [("7", "champion"), ("8", "shadow")]
    # Bars end at 300 s: predictions up to t = 240 s have their 60 s outcome.
    assert stored["matured"].to_list() == [seconds - HORIZON, seconds - HORIZON]
    assert stored["ic"][0] == pytest.approx(1.0) and stored["ic"][1] == pytest.approx(-1.0)
    assert report.watermark_ns == T0 + (seconds - HORIZON) * NS
    assert pl.read_parquet(ranges_path).height == 2
    assert plot.startswith("![served](data:image/png;base64,")


def test_a_model_that_cannot_score_lands_as_a_model_error_the_metrics_count():
    names = ["mom_10s", "rv_60s"]
    x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(x, label=x[:, 0], feature_names=names), 2)
    model = ServingModel("shadow", LoadedModel("5", export_onnx(booster, names), names, {}), 1e-3)
    # The served vector lacks rv_60s: a version whose feature list no longer matches fails.
    decision = FallbackDecision(
        symbol="BINANCE:BTCUSDT",
        now_ns=T0,
        level=FallbackLevel.ONLINE,
        features={"mom_10s": 0.1},
        event_time_ns=T0,
        age_s=0.0,
        confidence_multiplier=1.0,
        reason="online",
    )
    config = SidecarConfig(
        ("BINANCE:BTCUSDT",), "ws://unused", "http://unused", Path("unused"), None
    )
    trader = Trader(config, RiskEngine(RiskLimits()), MessageCounts())  # no feed, store or API

    logged = trader.prediction("BINANCE:BTCUSDT", T0, decision, model, False, time.perf_counter())
    scored = score_predictions(
        predictions_frame([{"timestamp": T0, "model_version": "5", "role": "shadow",
                            "reason": logged.reason}]),
        closes_frame({0: 100.0, 70: 101.0}),
        HORIZON,
    )  # fmt: skip

    assert logged.reason.startswith(f"{MODEL_ERROR_REASON}: FeatureOrderError")
    assert (logged.model_version, logged.role, logged.should_trade) == ("5", "shadow", False)
    assert role_metrics(scored, "5", "shadow").errors == 1
