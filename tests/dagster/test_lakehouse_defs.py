"""The code location exposes the lakehouse assets, checks, partitions and resources."""

from __future__ import annotations

import dagster as dg

from trading_assets.definitions import defs as lazy_defs

LAKEHOUSE_ASSETS = {"raw_trades", "bronze_trades", "silver_trades", "bars_1s", "bars_1m"}
BLOCKING_CHECKS = {"rows_reconcile", "no_duplicate_trade_ids", "time_never_goes_backwards"}
WARNING_CHECKS = {"trade_id_gaps", "no_price_spikes"}


def test_lakehouse_assets_and_checks_are_defined():
    definitions = lazy_defs()
    graph = definitions.resolve_asset_graph()

    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}

    assert keys >= LAKEHOUSE_ASSETS
    assert set(checks) >= BLOCKING_CHECKS | WARNING_CHECKS
    assert {name for name in BLOCKING_CHECKS if checks[name].blocking} == BLOCKING_CHECKS
    assert not any(checks[name].blocking for name in WARNING_CHECKS)


def test_assets_share_day_by_instrument_partitions_and_follow_upstream():
    graph = lazy_defs().resolve_asset_graph()

    for name in LAKEHOUSE_ASSETS:
        node = graph.get(dg.AssetKey(name))
        partitions = node.partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition), name
        assert partitions.partition_dimension_names == ["date", "instrument"]
        # raw_trades comes by the daily_bulk_ingest schedule; every later layer follows upstream.
        assert (node.automation_condition is not None) == (name != "raw_trades"), name
    bars = graph.get(dg.AssetKey("bars_1m"))
    assert bars.parent_keys == {dg.AssetKey("bars_1s")}


def test_resources_are_configured_for_the_local_environment():
    resources = lazy_defs().resources or {}

    assert {"iceberg", "binance_bulk"} <= set(resources)
