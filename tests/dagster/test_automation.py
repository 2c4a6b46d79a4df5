"""Automation wiring: the sensor runs by default and each layer follows its upstream partition."""

from __future__ import annotations

import dagster as dg

from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.automation import automation
from trading_assets.defs.features.assets import feast_registry, features, online_features
from trading_assets.defs.ingest.partitions import DATE_DIMENSION, trade_partitions
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades

DOWNSTREAM = (bronze_trades, silver_trades, bars_1s, bars_1m, features)


def test_automation_sensor_is_running_by_default():
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING


def latest_partition(symbol: str) -> dg.MultiPartitionKey:
    days = trade_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
    return dg.MultiPartitionKey({"date": days.get_last_partition_key(), "symbol": symbol})


def test_new_raw_day_requests_every_downstream_layer_for_that_partition_only():
    # Eager automation follows the newest day; older days are the business of backfills.
    partition = latest_partition("BTCUSDT")
    definitions = lazy_defs()
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=raw_trades.key, partition=partition)
    )

    result = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=first.cursor
    )

    requested = {
        (asset.key, key)
        for asset in (*DOWNSTREAM, raw_trades)
        for key in result.get_requested_partitions(asset.key)
    }
    assert all(first.get_num_requested(asset.key) == 0 for asset in (*DOWNSTREAM, raw_trades))
    assert requested == {(asset.key, partition) for asset in DOWNSTREAM}


def test_fresh_instance_applies_the_feast_registry_once():
    definitions = lazy_defs()
    instance = dg.DagsterInstance.ephemeral()

    first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=feast_registry.key))
    second = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=first.cursor
    )

    assert first.get_num_requested(feast_registry.key) == 1
    assert first.total_requested == 1
    assert second.get_num_requested(feast_registry.key) == 0


def test_online_store_follows_new_features_without_waiting_for_all_history():
    definitions = lazy_defs()
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=feast_registry.key))
    first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=features.key, partition=latest_partition("ETHUSDT"))
    )

    second = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=first.cursor
    )

    assert first.get_num_requested(online_features.key) == 0
    assert second.get_num_requested(online_features.key) == 1
