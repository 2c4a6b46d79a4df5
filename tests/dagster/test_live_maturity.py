"""Today's landed predictions mature on live pickup alone, with no automation run in between.

Real parts: trades and predictions landed by the sidecar's ``LandingWriter``, the
``live_trades_landing`` sensor on a real instance, the ``live_trades_ingest`` job it targets
executed against a tmp Iceberg catalog and Feast export, and the scoring the rollout sensor and
``live_model_metrics`` use.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from streaming.landing import PREDICTIONS_KIND, TRADES_KIND, LandingWriter
from streaming.predictions import Prediction
from streaming.records import Trade
from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.features.assets import features
from trading_assets.defs.features.cross import cross_features
from trading_assets.defs.ingest.landing import (
    LIVE_JOB_NAME,
    LandingResource,
    live_trades_ingest,
    live_trades_landing,
)
from trading_assets.defs.ingest.partitions import trade_partitions
from trading_assets.defs.lakehouse import checks
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG
from trading_assets.lib.models.live_metrics import scored_window
from trading_assets.resources import FeastResource, IcebergCatalogResource

NS = 1_000_000_000
SYMBOL = "BTCUSDT"  # as the venue names it on its trades
INSTRUMENT = f"BINANCE:{SYMBOL}"  # what predictions and partitions name
HORIZON_S = FEATURE_CONFIG.label_horizon_s
TRADED_S = 300  # five minutes of trades, two a second
PREDICTED_S = range(5, TRADED_S - 5)  # one prediction a second, the last ones still immature


def newest_day() -> dt.date:
    """Today: the newest partition the definitions offer, the one the sidecar's trades fill."""
    days = trade_partitions.get_partitions_def_for_dimension("date")
    return dt.date.fromisoformat(days.get_last_partition_key() or "")


def land_trades(root: Path, start_ns: int) -> None:
    rng = np.random.default_rng(3)
    prices = 60_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, TRADED_S * 2)))
    with LandingWriter(root, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600) as writer:
        for trade_id, price in enumerate(prices, start=1):
            trade_ns = start_ns + trade_id * NS // 2
            record = Trade(
                SYMBOL, trade_id, f"{price:.2f}", "0.01000", trade_id % 3 == 0,
                trade_ns, trade_ns + 1_000_000, trade_ns + 2_000_000,
            )  # fmt: skip
            writer.write(record)
        writer.rotate()  # sealed, as the sidecar's 20 s rotation leaves it


def land_predictions(root: Path, start_ns: int) -> None:
    with LandingWriter(root, PREDICTIONS_KIND, time_fields=("timestamp",)) as writer:
        for second in PREDICTED_S:
            predicted = math.sin(second) * 1e-4
            writer.write(
                Prediction(
                    symbol=INSTRUMENT,
                    timestamp=start_ns + second * NS,
                    signal=math.tanh(predicted / 1e-3),
                    confidence=0.5,
                    risk_score=0.0,
                    should_trade=False,
                    model_version="2",
                    fallback_level=1,
                    latency_ms=2.0,
                    role="shadow",
                    predicted_return=predicted,
                )
            )


def test_a_live_pickup_refreshes_todays_bars_so_predictions_landed_today_mature(tmp_path):
    day = newest_day()
    start_ns = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * NS
    landing = tmp_path / "landing"
    iceberg = IcebergCatalogResource.local(tmp_path / "iceberg")
    land_trades(landing, start_ns)
    land_predictions(landing, start_ns)
    instance = dg.DagsterInstance.ephemeral()
    definitions = dg.Definitions(
        assets=[bronze_trades, silver_trades, bars_1s, features, cross_features],
        asset_checks=[
            checks.no_duplicate_trade_ids,
            checks.time_never_goes_backwards,
            checks.trade_id_gaps,
            checks.no_price_spikes,
        ],
        jobs=[live_trades_ingest],
        resources={"iceberg": iceberg, "feast": FeastResource.local(tmp_path / "feast")},
    )
    automation_before = dg.evaluate_automation_conditions(defs=lazy_defs(), instance=instance)

    # What the daemon does with the sensor's request: one run of the job the sensor targets.
    sensor = dg.build_sensor_context(
        instance=instance, resources={"landing": LandingResource(root=str(landing))}
    )
    request = next(iter(live_trades_landing(sensor).run_requests or []))  # type: ignore[union-attr]
    run = definitions.resolve_job_def(LIVE_JOB_NAME).execute_in_process(
        partition_key=request.partition_key, run_config=request.run_config, instance=instance
    )
    scored = scored_window(
        iceberg.lakehouse(), landing, start_ns, start_ns + 2 * TRADED_S * NS, HORIZON_S
    )
    automation_after = dg.evaluate_automation_conditions(
        defs=lazy_defs(), instance=instance, cursor=automation_before.cursor
    )

    assert run.success
    partition = dg.MultiPartitionKey({"date": day.isoformat(), "instrument": INSTRUMENT})
    assert request.partition_key == partition
    # The newest trade is at 300 s, so the bars reach 301 s: a prediction at t has matured
    # once t + 60 s <= 301 s.
    expected = [second + HORIZON_S <= TRADED_S + 1 for second in PREDICTED_S]
    assert scored.height == len(PREDICTED_S)
    assert scored["matured"].to_list() == expected
    assert scored.filter("matured")["realized_return"].is_not_null().all()
    assert scored.filter(~pl.col("matured"))["realized_return"].is_null().all()
    bars_events = run.asset_materializations_for_node("bars_1s")
    assert [event.partition for event in bars_events] == [partition]
    assert run.asset_materializations_for_node("features")
    # Automation does not rebuild what the pickup already did; bars_1m still follows.
    assert automation_after.get_num_requested(bars_1s.key) == 0
    assert automation_after.get_num_requested(features.key) == 0
    assert automation_after.get_num_requested(cross_features.key) == 0
    assert automation_after.get_requested_partitions(bars_1m.key) == {partition}
