"""A partitioned job over every day × symbol asset, so a range can be backfilled from the CLI
(``dagster job backfill``) as well as from the UI's asset backfill."""

import datetime as dt

import dagster as dg

from trading_assets.defs.ingest.partitions import (
    DATE_DIMENSION,
    INSTRUMENT_DIMENSION,
    trade_partitions,
)

BULK_CRON = "30 3 * * *"  # Binance publishes a day's file the next morning (UTC)

lakehouse_daily = dg.define_asset_job(
    "lakehouse_daily",
    # The lakehouse layers plus the gold features; the unpartitioned Feast assets follow by
    # automation once the partitions land.
    selection=dg.AssetSelection.groups("lakehouse")
    | dg.AssetSelection.assets("features", "cross_features"),
    partitions_def=trade_partitions,
    description=(
        "raw → bronze → silver (+ quarantine) → bars_1s → bars_1m → features (+ cross features) "
        "for one day × instrument."
    ),
)


@dg.schedule(
    cron_schedule=BULK_CRON,
    job=lakehouse_daily,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
)
def daily_bulk_ingest(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Yesterday's bulk file for every symbol, through every layer (it replaces the live rows)."""
    tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    day = (tick.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    symbols = trade_partitions.get_partitions_def_for_dimension(INSTRUMENT_DIMENSION)
    return [
        dg.RunRequest(
            run_key=f"{day}|{symbol}",
            partition_key=dg.MultiPartitionKey({DATE_DIMENSION: day, INSTRUMENT_DIMENSION: symbol}),
        )
        for symbol in symbols.get_partition_keys()
    ]
