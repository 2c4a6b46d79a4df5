"""Simulator day → lakehouse → gold features → Feast registry → online store → training set."""

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
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.gold import read_gold
from trading_assets.resources import BinanceBulkResource, FeastResource, IcebergCatalogResource

TRADES_PER_DAY = 5_000
SEED = 11
DAY = dt.date(2024, 3, 1)
SYMBOL = "BTCUSDT"
LAKEHOUSE = [raw_trades, bronze_trades, silver_trades, bars_1s]


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
    key = f"{DAY.isoformat()}|{SYMBOL}"

    daily = dg.materialize([*LAKEHOUSE, features], partition_key=key, resources=resources)
    serving = dg.materialize(
        [feast_registry, online_features, training_set],
        resources=resources,
        selection=[feast_registry, online_features, training_set],
    )

    assert daily.success and serving.success
    gold_meta = only(daily, "features")
    lake = resources["iceberg"].lakehouse()
    gold = read_gold(lake, SYMBOL, DAY)
    assert gold_meta["rows"] == gold.height > 20_000  # dense 1 s grid over the trading day
    assert gold_meta["warmed_up_from_previous_day"] is False
    exported = offline.read_offline(resources["feast"].offline_features_dir())
    assert exported.height == gold.height

    registry_meta = only(serving, "feast_registry")
    assert registry_meta["changed"] is True
    assert set(registry_meta["feature_services"]) == set(spec.SERVICES)

    store = resources["feast"].store()
    online = store.get_online_features(
        features=store.get_feature_service("signal_trades_v1"), entity_rows=[{"symbol": SYMBOL}]
    ).to_dict()
    latest = gold.sort("event_timestamp").row(-1, named=True)
    for name in spec.group_features("price") + spec.group_features("flow"):
        assert online[name] == [latest[name]], name

    training_meta = only(serving, "training_set")
    frame = pl.read_parquet(str(training_meta["path"]))
    assert training_meta["rows"] == frame.height > 0
    assert frame["fwd_log_return_60s"].null_count() == 0
    assert sum(training_meta["class_balance"].values()) == frame.height
    assert set(training_meta["feature_null_rates"]) == set(
        spec.group_features("price") + spec.group_features("flow")
    )
    # A warm row's features equal the gold row at the same timestamp (same second, same values).
    joined = frame.join(gold, on=["symbol", "event_timestamp"], suffix="_gold")
    assert joined.height == frame.height
    assert (joined["mom_60s"] == joined["mom_60s_gold"]).all()
