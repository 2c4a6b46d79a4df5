"""Automation wiring: the sensor runs by default and each layer follows its upstream partition."""

from __future__ import annotations

import datetime as dt

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


def latest_partition(instrument: str) -> dg.MultiPartitionKey:
    days = trade_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
    return dg.MultiPartitionKey({"date": days.get_last_partition_key(), "instrument": instrument})


def test_new_raw_day_requests_every_downstream_layer_for_that_partition_only():
    # Eager automation follows the newest day; older days are the business of backfills.
    partition = latest_partition("BINANCE:BTCUSDT")
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
        dg.AssetMaterialization(
            asset_key=features.key, partition=latest_partition("BINANCE:ETHUSDT")
        )
    )

    second = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=first.cursor
    )

    assert first.get_num_requested(online_features.key) == 0
    assert second.get_num_requested(online_features.key) == 1


MODEL_CHAIN = ("onnx_model", "registered_model", "challenger_model")


UNPARTITIONED = (
    "training_set",
    "full_model",
    "recent_training_rows",
    "incremental_model",
    *MODEL_CHAIN,
)


def requested_assets(result) -> set[str]:
    return {name for name in UNPARTITIONED if result.get_num_requested(dg.AssetKey(name))}


MODEL_CLOCK_START = dt.datetime(2026, 3, 2, 5, 58, tzinfo=dt.UTC)


class ModelClock:
    """Evaluates the automation at start + minutes on one instance; what a tick requests among
    the model assets succeeds right away."""

    def __init__(self) -> None:
        self.definitions = lazy_defs()
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None

    def tick(self, minutes: int) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.definitions,
            instance=self.instance,
            cursor=self.cursor,
            evaluation_time=MODEL_CLOCK_START + dt.timedelta(minutes=minutes),
        )
        self.cursor = result.cursor
        requested = requested_assets(result)
        for name in requested:
            self.instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(name)))
        return requested

    def export_gold(self) -> None:
        """What the bootstrap's history backfill leaves: one day × instrument of bars and gold
        features (exported for Feast), and the applied Feast registry."""
        days = trade_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
        # The first day exists as a partition at any evaluation time the tests use.
        first_day = days.get_first_partition_key() or ""
        first = dg.MultiPartitionKey({"date": first_day, "instrument": "BINANCE:BTCUSDT"})
        for asset in (bars_1s, features):
            self.instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=asset.key, partition=first)
            )
        self.instance.report_runless_asset_event(dg.AssetMaterialization(feast_registry.key))


def test_models_follow_their_six_hour_and_five_minute_cadences():
    clock = ModelClock()
    clock.export_gold()
    tick = clock.tick

    before = tick(0)  # 05:58
    six_hour = tick(3)  # 06:01, past the 06:00 tick of both cadences
    settled = tick(4)
    five_minute = tick(8)  # 06:06, past the 06:05 tick only
    idle = tick(9)
    next_five = tick(13)

    incremental = {"recent_training_rows", "incremental_model", *MODEL_CHAIN}
    assert before == set()
    assert six_hour == {"training_set", "full_model", *incremental}
    assert settled == idle == set()
    assert five_minute == next_five == incremental


def test_model_cadences_wait_for_exported_gold_and_a_full_model():
    clock = ModelClock()

    fresh = clock.tick(0)  # 05:58, a fresh install: the history backfill is still running
    without_gold = clock.tick(3)  # 06:01, past both cadences' tick
    clock.export_gold()
    gold_only = clock.tick(4)
    newest_rows = clock.tick(8)  # 06:06
    idle = clock.tick(9)  # what 06:06 requested has succeeded since
    again = clock.tick(13)  # 06:11
    clock.tick(14)
    six_hours_later = clock.tick(6 * 60 + 3)  # 12:01

    assert fresh == without_gold == idle == set()
    # The 06:00 tick passed with nothing to read: it is dropped, not fired when gold appears.
    assert gold_only == set()
    # The newest rows follow the 5-minute cadence; the incremental model needs a full one.
    assert newest_rows == again == {"recent_training_rows"}
    assert six_hours_later == {
        "training_set",
        "full_model",
        "recent_training_rows",
        "incremental_model",
        *MODEL_CHAIN,
    }


def test_daily_bulk_schedule_requests_yesterday_for_every_instrument():
    from trading_assets.defs.lakehouse.jobs import daily_bulk_ingest

    tick = dt.datetime(2026, 3, 2, 3, 30, tzinfo=dt.UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)

    requests = daily_bulk_ingest(context)

    days = trade_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)
    assert daily_bulk_ingest.default_status == dg.DefaultScheduleStatus.RUNNING
    assert {str(r.partition_key) for r in requests} == {
        f"2026-03-01|{instrument}"
        for instrument in trade_partitions.get_partitions_def_for_dimension(
            "instrument"
        ).get_partition_keys()
    }
    assert days.has_partition_key("2026-03-01")


def test_today_is_the_live_partition():
    days = trade_partitions.get_partitions_def_for_dimension(DATE_DIMENSION)

    assert days.get_last_partition_key() == dt.datetime.now(dt.UTC).date().isoformat()
