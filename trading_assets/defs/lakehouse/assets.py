"""bronze → silver (+ quarantine) → bars_1s → bars_1m, one Iceberg partition per day × symbol."""

import datetime as dt
from typing import Any

import dagster as dg
from pydantic import Field

from trading_assets.defs.ingest.partitions import (
    day_and_instrument,
    run_partitions,
    trade_partitions,
)
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.metadata import partition_write_metadata
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.lib.lakehouse import pipeline
from trading_assets.lib.lakehouse.landing import default_landing_location
from trading_assets.resources.iceberg import IcebergCatalogResource

# bronze's record of the newest landed segment it holds: the live pickup sensor does not ask
# again for what a run has already ingested.
LAST_SEGMENT = "last_segment"

# Each layer follows its upstream partition as soon as that one is materialized.
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()

# Dagster judges freshness by the newest materialization of any partition. While the sidecar
# runs, the live_trades_landing sensor rewrites today's silver about every minute, so 10 minutes
# without one means live pickup stopped (sidecar, landing or sensor). Without live data only the
# daily bulk ingest (03:30 UTC) moves silver: 26 hours is one missed day plus two hours' slack.
SILVER_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(minutes=10)
)


class BronzeConfig(dg.Config):
    """Where bronze looks for live trades when a day's bulk file is not stored yet, and whether
    a bulk file may drop trades that bronze holds."""

    landing_root: str = Field(
        default="",
        description=(
            "The landing location: a folder, or s3://bucket/prefix (empty: TRADING_LANDING_URI)."
        ),
    )
    replace_missing_trades: bool = Field(
        default=False,
        description=(
            "Replace the partition even when the bulk file lacks trades it holds (e.g. landed "
            "live); only for a file known to be right. Refused otherwise, naming the trades."
        ),
    )


@dg.asset(
    deps=[raw_trades],
    partitions_def=trade_partitions,
    group_name="lakehouse",
    kinds={"iceberg", "polars"},
    automation_condition=FOLLOW_UPSTREAM,
)
@retry_on_store_outage
def bronze_trades(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, config: BronzeConfig
) -> dg.MaterializeResult:
    """bronze.trades: trades as received (strings), from the bulk CSV or landed live ticks."""
    landing_root = config.landing_root or default_landing_location()
    for key, day, symbol in run_partitions(context):
        # load_bronze hands the location on to read_landed_trades, which takes a path or a URI.
        result = pipeline.load_bronze(
            iceberg.lakehouse(),
            symbol,
            day,
            landing_root,
            replace_missing_trades=config.replace_missing_trades,
        )
        metadata: dict[str, Any] = {
            **partition_write_metadata(result.write),
            "source": result.source,
        }
        if result.raw_sha256 is not None:
            metadata["raw_sha256"] = result.raw_sha256
        else:
            metadata["landed_segments"] = dg.MetadataValue.int(result.landed_segments)
            metadata[LAST_SEGMENT] = result.last_segment or ""
        context.add_asset_metadata(metadata, partition_key=key)
    return dg.MaterializeResult()


@dg.asset(
    deps=[bronze_trades],
    partitions_def=trade_partitions,
    group_name="lakehouse",
    kinds={"iceberg", "polars"},
    automation_condition=FOLLOW_UPSTREAM,
    freshness_policy=SILVER_FRESHNESS,
)
@retry_on_store_outage
def silver_trades(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """silver.trades: typed, exact-decimal, deduplicated trades; rejects go to silver.quarantine."""
    for key, day, symbol in run_partitions(context):
        result = pipeline.refine_silver(iceberg.lakehouse(), symbol, day)
        if result.quarantine.rows:
            context.log.warning(f"{symbol} {day}: {result.quarantine.rows} rows quarantined")
        metadata = {
            **partition_write_metadata(result.silver),
            **partition_write_metadata(result.quarantine, prefix="quarantine_"),
            "quarantine_reasons": dg.MetadataValue.json(result.reasons),
        }
        context.add_asset_metadata(metadata, partition_key=key)
    return dg.MaterializeResult()


@dg.asset(
    deps=[silver_trades],
    partitions_def=trade_partitions,
    group_name="lakehouse",
    kinds={"iceberg", "polars"},
    automation_condition=FOLLOW_UPSTREAM,
)
@retry_on_store_outage
def bars_1s(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """silver.bars_1s: 1-second OHLCV, VWAP, taker buy/sell volume and trade count."""
    for key, day, symbol in run_partitions(context):
        result = pipeline.build_bars_1s(iceberg.lakehouse(), symbol, day)
        context.add_asset_metadata(partition_write_metadata(result.write), partition_key=key)
    return dg.MaterializeResult()


@dg.asset(
    deps=[bars_1s],
    partitions_def=trade_partitions,
    group_name="lakehouse",
    kinds={"iceberg", "polars"},
    automation_condition=FOLLOW_UPSTREAM,
)
@retry_on_store_outage
def bars_1m(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """silver.bars_1m: 1-minute bars rolled up from bars_1s (same columns), with a day chart."""
    # matplotlib takes seconds to import; only this step pays for it, not every step process.
    from trading_assets.lib.lakehouse.plots import bars_chart_markdown

    day, symbol = day_and_instrument(context.partition_key)
    result = pipeline.build_bars_1m(iceberg.lakehouse(), symbol, day)
    chart = bars_chart_markdown(result.bars, f"{symbol} {day} 1m close / volume")
    return dg.MaterializeResult(
        metadata={
            **partition_write_metadata(result.write),
            "chart": dg.MetadataValue.md(chart),
        }
    )
