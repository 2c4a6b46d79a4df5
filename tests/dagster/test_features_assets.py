"""Simulator day → lakehouse → gold features → Feast registry → online store → training set →
newest rows → models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl
import pytest

from streaming.simulator.server import run_simulator_in_thread
from trading_assets.defs.features.assets import (
    feast_registry,
    features,
    online_features,
    training_set,
)
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
from trading_assets.defs.models.registry import (
    beats_baselines,
    challenger_model,
    onnx_model,
    onnx_parity,
    registered_model,
)
from trading_assets.defs.models.training import full_model, incremental_model, recent_training_rows
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.gold import read_gold
from trading_assets.lib.features import level_feature_names
from trading_assets.resources import (
    BinanceBulkResource,
    FeastResource,
    IcebergCatalogResource,
    MlflowResource,
)

from .watermarks import FEATURES_TEST, assets_of, expected_states, watermark_states

TRADES_PER_DAY = 5_000
SEED = 11
DAY = dt.date(2024, 3, 1)
SYMBOL = "BTCUSDT"  # as the simulator names it
INSTRUMENT = f"BINANCE:{SYMBOL}"
LAKEHOUSE = [raw_trades, bronze_trades, silver_trades, bars_1s]
MODELS = [full_model, incremental_model, onnx_model, registered_model, challenger_model]
RECENT_HOURS = 1.0


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with run_simulator_in_thread(
        symbols=[SYMBOL], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        yield sim.http_url


def only(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def test_features_to_feast_to_training_set(tmp_path, simulator):
    resources = {
        "iceberg": IcebergCatalogResource.local(tmp_path / "iceberg"),
        "binance_bulk": BinanceBulkResource(base_url=simulator),
        "feast": FeastResource.local(tmp_path / "feast"),
    }
    key = f"{DAY.isoformat()}|{INSTRUMENT}"
    instance = (
        dg.DagsterInstance.ephemeral()
    )  # one instance: the watermarks are read back at the end

    daily = dg.materialize(
        [*LAKEHOUSE, features], partition_key=key, resources=resources, instance=instance
    )
    serving = dg.materialize(
        [feast_registry, online_features, training_set],
        resources=resources,
        selection=[feast_registry, online_features, training_set],
        instance=instance,
    )

    assert daily.success and serving.success
    gold_meta = only(daily, "features")
    lake = resources["iceberg"].lakehouse()
    gold = read_gold(lake, INSTRUMENT, DAY)
    assert gold_meta["rows"] == gold.height > 20_000  # dense 1 s grid over the trading day
    assert gold_meta["warmed_up_from_previous_day"] is False
    exported = offline.read_offline(resources["feast"].offline_features_dir())
    assert exported.height == gold.height

    registry_meta = only(serving, "feast_registry")
    assert registry_meta["changed"] is True
    assert set(registry_meta["feature_services"]) == set(spec.SERVICES)

    store = resources["feast"].store()
    online = store.get_online_features(
        features=store.get_feature_service("signal_trades_v1"),
        entity_rows=[{"instrument": INSTRUMENT}],
    ).to_dict()
    latest = gold.sort("event_timestamp").row(-1, named=True)
    for name in spec.group_features("price") + spec.group_features("flow"):
        assert online[name] == [latest[name]], name

    training_meta = only(serving, "training_set")
    frame = pl.read_parquet(str(training_meta["path"]))
    assert training_meta["rows"] == frame.height > 0
    assert frame["fwd_log_return_60s"].null_count() == 0
    assert sum(training_meta["class_balance"].values()) == frame.height
    # The training service's features: the trades-only groups without the display-only levels.
    assert list(training_meta["feature_null_rates"]) == spec.service_features(spec.TRAINING_SERVICE)
    assert not set(level_feature_names(spec.FEATURE_CONFIG)) & set(frame.columns)
    # A warm row's features equal the gold row at the same timestamp (same second, same values).
    joined = frame.join(gold, on=["instrument", "event_timestamp"], suffix="_gold")
    assert joined.height == frame.height
    assert (joined["mom_60s"] == joined["mom_60s_gold"]).all()

    # The incremental model's newest rows: the last hour of known labels, exact gold values.
    recent_run = dg.materialize(
        [recent_training_rows],
        resources=resources,
        run_config={"ops": {"recent_training_rows": {"config": {"hours": RECENT_HOURS}}}},
        instance=instance,
    )
    recent_meta = only(recent_run, "recent_training_rows")
    recent = pl.read_parquet(str(recent_meta["path"]))
    horizon = dt.timedelta(seconds=spec.FEATURE_CONFIG.label_horizon_s)
    newest_bar = gold["event_timestamp"].max()
    assert recent.height == recent_meta["dagster/row_count"] == RECENT_HOURS * 3600
    assert recent["event_timestamp"].max() <= newest_bar - horizon
    assert recent["fwd_log_return_60s"].null_count() == 0
    same = recent.join(gold, on=["instrument", "event_timestamp"], suffix="_gold")
    assert same.height == recent.height
    assert same["rv_300s"].eq_missing(same["rv_300s_gold"]).all()
    assert [c for c in recent.columns if c in gold.columns] == [
        "instrument",
        "event_timestamp",
        *spec.service_features(spec.TRAINING_SERVICE),
    ]
    shared = recent.join(frame, on=["instrument", "event_timestamp"], suffix="_training")
    assert shared.height > 0
    assert (shared["fwd_log_return_60s"] == shared["fwd_log_return_60s_training"]).all()

    # The whole model chain on these rows: parity holds and a version is recorded whatever the
    # gate decides (a day of synthetic tape may or may not beat the baselines).
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
    models = dg.materialize(
        [*MODELS, onnx_parity, beats_baselines],
        resources={**resources, "mlflow": mlflow},
        run_config={"ops": {"full_model": {"config": {"n_trees": 30, "n_folds": 3}}}},
        raise_on_error=False,
        instance=instance,
    )
    checks = {e.check_name: e for e in models.get_asset_check_evaluations()}
    assert checks["onnx_parity"].passed
    registered = only(models, "registered_model")
    assert registered["version"] == "1"
    assert registered["watermark"] == recent_meta["watermark"]
    aliased = bool(models.asset_materializations_for_node("challenger_model"))
    assert aliased == checks["beats_baselines"].passed == models.success

    # Every asset of the code location this chain materialized records its watermark (the
    # registry, which holds no market data, a note instead).
    states = watermark_states(instance)
    assert assets_of(FEATURES_TEST) <= set(states)
    assert states == expected_states(set(states))
    assert only(serving, "online_features")["watermark"] == gold_meta["watermark"]
