"""Gold features → Feast: the gold table (+ offline export), the registry, the online store and
point-in-time training sets. Asset bodies wire resources to lib/feature_store calls."""

import datetime as dt

import dagster as dg
from pydantic import Field

from trading_assets.defs.automation import once_per_tick
from trading_assets.defs.features.metadata import (
    apply_metadata,
    gold_metadata,
    training_metadata,
)
from trading_assets.defs.ingest.partitions import run_partitions, trade_partitions
from trading_assets.defs.lakehouse.assets import bars_1s
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.repo import definitions_version
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource

GROUP = "features"

# Applied on a fresh instance (once: a failed apply waits for a fix, it is not retried every
# tick), then again whenever the definitions' code version changes.
# Eager, except that the years of unmaterialized history partitions of `features` do not count as
# missing inputs (plain eager waits for every upstream partition of an unpartitioned asset).
FOLLOW_NEWEST_FEATURES = dg.AutomationCondition.eager().replace(
    "any_deps_missing",
    dg.AutomationCondition.any_deps_missing().ignore(
        dg.AssetSelection.assets("features", "cross_features")
    ),
)

# Today's features are rebuilt by every live pickup run, right after silver and bars_1s, so its
# windows are silver's plus slack: 15 minutes without a materialization means the live path
# stalled; 27 hours means a daily bulk day (03:30 UTC) did not come through either.
FEATURES_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=27), warn_window=dt.timedelta(minutes=15)
)

APPLY_WHEN_MISSING_OR_CHANGED = (
    dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.in_progress()
    & ~dg.AutomationCondition.execution_failed()
) | dg.AutomationCondition.code_version_changed()


@dg.asset(
    deps=[bars_1s],
    partitions_def=trade_partitions,
    group_name=GROUP,
    kinds={"iceberg", "polars", "parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    freshness_policy=FEATURES_FRESHNESS,
)
@retry_on_store_outage
def features(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, feast: FeastResource
) -> dg.MaterializeResult:
    """gold.features: price and flow features per 1 s bar, exported for Feast's offline store."""
    from trading_assets.lib.feature_store.gold import build_gold_features

    for key, day, symbol in run_partitions(context):
        result = build_gold_features(iceberg.lakehouse(), symbol, day)
        export = offline.export_partition(
            result.features, feast.offline_features_dir(), day, symbol
        )
        if not result.warmed_up:
            context.log.warning(
                f"{symbol} {day}: no bars for the previous day; the first "
                f"{max(spec.FEATURE_CONFIG.windows_s)} s of windows start cold (null until filled)"
            )
        context.add_asset_metadata(gold_metadata(result, export), partition_key=key)
    return dg.MaterializeResult()


@dg.asset(
    group_name=GROUP,
    kinds={"feast"},
    code_version=definitions_version(),
    automation_condition=APPLY_WHEN_MISSING_OR_CHANGED,
)
@retry_on_store_outage
def feast_registry(context: dg.AssetExecutionContext, feast: FeastResource) -> dg.MaterializeResult:
    """Feast registry: feature_repo/'s entities, sources, views and services (no market data)."""
    from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions

    summary = apply_definitions(feast.store(), load_definitions(feast.repo_dir))
    context.log.info(f"Feast apply: {summary.changes}")
    return dg.MaterializeResult(metadata=apply_metadata(summary))


@dg.asset(
    deps=[features, "cross_features", feast_registry],
    group_name=GROUP,
    kinds={"feast", "redis"},
    automation_condition=FOLLOW_NEWEST_FEATURES,
    # Bulk history lands daily; the live sidecar keeps the store fresh between runs.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=50), warn_window=dt.timedelta(hours=26)
    ),
)
@retry_on_store_outage
def online_features(
    context: dg.AssetExecutionContext, feast: FeastResource
) -> dg.MaterializeResult:
    """Online store: each symbol's newest gold price and flow features, and cross features where
    configured (Feast materialize)."""
    from trading_assets.lib.feature_store.online import materialize_newest

    result = materialize_newest(
        feast.store(), feast.offline_features_dir(), feast.cross_features_dir()
    )
    context.log.info(f"materialized {result.views} over {result.start} .. {result.end}")
    return dg.MaterializeResult(
        metadata={
            "views": dg.MetadataValue.json(result.views),
            "window_start": dg.MetadataValue.timestamp(result.start),
            "watermark": dg.MetadataValue.timestamp(result.newest),
            "symbols_served": dg.MetadataValue.json(result.symbols_served),
            "dagster/row_count": dg.MetadataValue.int(len(result.symbols_served)),
        }
    )


class TrainingSetConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Feast feature service the model declares."
    )
    last_days: int = Field(
        default=30, description="Calendar days of exported history, back from the newest day."
    )
    symbols: list[str] = Field(default_factory=list, description="Empty: every exported one.")
    sample_every_s: int = Field(default=10, description="One entity row per symbol every N s.")


# Rebuilt on the full model's 6-hour cadence, from whatever history has been exported by then.
TRAINING_CADENCE = once_per_tick("0 */6 * * *")


@dg.asset(
    deps=[features, feast_registry, bars_1s],
    group_name=GROUP,
    kinds={"feast", "parquet"},
    automation_condition=TRAINING_CADENCE,
)
@retry_on_store_outage
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    iceberg: IcebergCatalogResource,
    feast: FeastResource,
) -> dg.MaterializeResult:
    """Point-in-time training frame: Feast historical features joined to forward-return labels."""
    from trading_assets.lib.feature_store.training import assemble_training_set

    result = assemble_training_set(
        iceberg.lakehouse(),
        feast.store(),
        feast.offline_features_dir(),
        feast.training_dir(),
        service=config.feature_service,
        last_days=config.last_days,
        symbols=config.symbols,
        sample_every_s=config.sample_every_s,
    )
    context.log.info(f"training set: {result.summary.rows} rows at {result.path}")
    return dg.MaterializeResult(metadata=training_metadata(result))
