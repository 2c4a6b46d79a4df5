"""gold.cross_features → Feast: the cross group of each own instrument of ``TRADING_CROSS_PAIRS``,
from its own and its reference's 1 s bars of the day. The asset body wires resources to
:mod:`trading_assets.lib.feature_store.cross_gold`."""

from collections.abc import Mapping, Sequence

import dagster as dg

from trading_assets.defs.features.metadata import gold_metadata
from trading_assets.defs.ingest.partitions import (
    DATE_DIMENSION,
    INSTRUMENT_DIMENSION,
    run_partitions,
    trade_partitions,
)
from trading_assets.defs.lakehouse.assets import bars_1s
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.defs.watermark import watermark_metadata
from trading_assets.lib.feature_store import offline
from trading_assets.lib.settings import load_settings
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource


def reference_mapping(
    instruments: Sequence[str], references: Mapping[str, str]
) -> dg.MultiPartitionMapping:
    """Each day × instrument of the bars feeds the same day of itself and of every own instrument
    whose reference it is, so lineage and automation see both inputs of a cross partition."""
    downstream = {
        upstream: {upstream, *(own for own, ref in references.items() if ref == upstream)}
        for upstream in instruments
    }
    return dg.MultiPartitionMapping(
        {
            DATE_DIMENSION: dg.DimensionPartitionMapping(
                DATE_DIMENSION, dg.IdentityPartitionMapping()
            ),
            INSTRUMENT_DIMENSION: dg.DimensionPartitionMapping(
                INSTRUMENT_DIMENSION, dg.StaticPartitionMapping(downstream)
            ),
        }
    )


def build_cross_features_asset(
    partitions_def: dg.MultiPartitionsDefinition, references: Mapping[str, str]
) -> dg.AssetsDefinition:
    """The ``cross_features`` asset over ``partitions_def`` (day × instrument) for the pairs
    ``references`` ({own: reference}), both instruments of each pair among its partitions."""
    instruments = partitions_def.get_partitions_def_for_dimension(INSTRUMENT_DIMENSION)
    mapping = reference_mapping(list(instruments.get_partition_keys()), references)

    @dg.asset(
        name="cross_features",
        deps=[dg.AssetDep(bars_1s, partition_mapping=mapping)],
        partitions_def=partitions_def,
        group_name="features",
        kinds={"iceberg", "polars", "parquet"},
        automation_condition=dg.AutomationCondition.eager(),
    )
    @retry_on_store_outage
    def cross_features(
        context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, feast: FeastResource
    ) -> dg.MaterializeResult:
        """gold.cross_features: basis, lead-lag and cross flow of an instrument against its
        reference (``TRADING_CROSS_PAIRS``) per 1 s bar, exported for Feast's offline store; an
        instrument without a reference has none, and says so."""
        from trading_assets.lib.feature_store.cross_gold import build_cross_features

        for key, day, own in run_partitions(context):
            reference = references.get(own)
            if reference is None:
                why = f"none: {own} is not an own instrument of TRADING_CROSS_PAIRS"
                context.add_asset_metadata(
                    {"reference": why, **watermark_metadata(None, why)}, partition_key=key
                )
                continue
            result = build_cross_features(iceberg.lakehouse(), own, reference, day)
            cross_dir = feast.cross_features_dir()
            export = offline.export_partition(result.features, cross_dir, day, own)
            if result.features["lead_ret_10s"].null_count() == result.features.height:
                context.log.warning(f"{own} {day}: no bars of its reference {reference} to compare")
            context.add_asset_metadata(
                {"reference": reference, **gold_metadata(result, export)}, partition_key=key
            )
        return dg.MaterializeResult()

    return cross_features


cross_features = build_cross_features_asset(trade_partitions, load_settings().cross_references)
