"""The captured L2 books in the lakehouse: landed book lines → bronze_book → silver_book, one day ×
instrument partition at a time, with the checks that hold silver to itself.

silver_book carries its three checks (one rebuild of the day serves them all): the diff chain is
continuous inside every segment, the book is never crossed, and the rebuild equals every periodic
snapshot. Each blocks what would read a broken book.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from trading_assets.defs.features.metadata import gold_metadata, sparkline
from trading_assets.defs.ingest.partitions import day_and_instrument, trade_partitions
from trading_assets.defs.lakehouse.metadata import partition_write_metadata
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.lib.book.lakehouse import (
    check_silver_book,
    load_bronze_book,
    refine_silver_book,
)
from trading_assets.lib.book.rebuild import Mismatch, RebuildReport
from trading_assets.lib.feature_store import offline
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.landing import LandingResource

BOOK_GROUP = "book"
LAST_BOOK_SEGMENT = "last_segment"
SEQUENCE_CHECK = "book_sequence_continuous"
CROSSED_CHECK = "book_never_crossed"
SNAPSHOTS_CHECK = "book_rebuild_matches_snapshots"
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()


@dg.asset(partitions_def=trade_partitions, group_name=BOOK_GROUP, kinds={"iceberg", "polars"})
@retry_on_store_outage
def bronze_book(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, landing: LandingResource
) -> dg.MaterializeResult:
    """bronze.book_updates and bronze.book_snapshots: every L2 book line the sidecar landed for
    the day, as written (a day it captured nothing is empty)."""
    day, instrument = day_and_instrument(context.partition_key)
    result = load_bronze_book(iceberg.lakehouse(), instrument, day, landing.location())
    if not result.landed_segments:
        context.log.info(f"{instrument} {day}: no book captured")
    return dg.MaterializeResult(
        metadata={
            **partition_write_metadata(result.updates),
            **partition_write_metadata(result.snapshots, prefix="snapshots_"),
            "landed_segments": dg.MetadataValue.int(result.landed_segments),
            LAST_BOOK_SEGMENT: result.last_segment or "",
        }
    )


def _check_specs() -> list[dg.AssetCheckSpec]:
    descriptions = {
        SEQUENCE_CHECK: "Inside every segment each diff continues the one before it.",
        CROSSED_CHECK: "The rebuilt book is never crossed (best bid below best ask).",
        SNAPSHOTS_CHECK: "The book rebuilt from the diffs equals every periodic snapshot.",
    }
    return [
        dg.AssetCheckSpec(name, asset="silver_book", description=text, blocking=True)
        for name, text in descriptions.items()
    ]


def _examples(found: list[Mismatch]) -> dg.MetadataValue:
    return dg.MetadataValue.json(
        [{"segment": m.segment, "update_id": m.last_update_id, "what": m.what} for m in found[:5]]
    )


def check_results(report: RebuildReport) -> list[dg.AssetCheckResult]:
    """The three checks' verdicts from one rebuild."""
    error = dg.AssetCheckSeverity.ERROR
    return [
        dg.AssetCheckResult(
            check_name=SEQUENCE_CHECK, passed=not report.breaks, severity=error,
            metadata={"segments": report.segments, "breaks": len(report.breaks),
                      "examples": _examples(report.breaks)},
        ),
        dg.AssetCheckResult(
            check_name=CROSSED_CHECK, passed=not report.crossed, severity=error,
            metadata={"crossed_after_diffs": report.crossed,
                      "diffs_applied": report.diffs_applied,
                      "examples": dg.MetadataValue.json(report.crossed_at)},
        ),
        dg.AssetCheckResult(
            check_name=SNAPSHOTS_CHECK, passed=not report.mismatches, severity=error,
            metadata={"snapshots_matched": report.snapshots_matched,
                      "mismatches": len(report.mismatches),
                      "examples": _examples(report.mismatches)},
        ),
    ]  # fmt: skip


@dg.asset(
    deps=[bronze_book],
    partitions_def=trade_partitions,
    group_name=BOOK_GROUP,
    kinds={"iceberg", "polars"},
    automation_condition=FOLLOW_UPSTREAM,
    check_specs=_check_specs(),
)
@retry_on_store_outage
def silver_book(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource
) -> Iterator[Any]:
    """silver.book_updates and silver.book_snapshots: the day's book lines typed (levels as
    integer 1e-8 units), repeated lines dropped; then the day's book rebuilt and checked."""
    day, instrument = day_and_instrument(context.partition_key)
    lake = iceberg.lakehouse()
    result = refine_silver_book(lake, instrument, day)
    report = check_silver_book(lake, instrument, day)
    yield dg.MaterializeResult(
        metadata={
            **partition_write_metadata(result.updates),
            **partition_write_metadata(result.snapshots, prefix="snapshots_"),
            "repeated_lines_dropped": dg.MetadataValue.int(result.repeated_lines),
            "segments": dg.MetadataValue.int(report.segments),
        }
    )
    yield from check_results(report)


@dg.asset(
    deps=[silver_book],
    partitions_def=trade_partitions,
    group_name="features",
    kinds={"iceberg", "polars", "parquet"},
    automation_condition=FOLLOW_UPSTREAM,
)
@retry_on_store_outage
def depth_features(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, feast: FeastResource
) -> dg.MaterializeResult:
    """gold.depth_features: depth imbalance, L2 microprice and spread, book slope and order-flow
    imbalance per second from the day's captured L2 book (``depth_covered`` says where it was
    captured), exported for Feast's offline store."""
    from trading_assets.lib.feature_store.depth_gold import build_depth_features

    day, instrument = day_and_instrument(context.partition_key)
    result = build_depth_features(iceberg.lakehouse(), instrument, day)
    export = offline.export_partition(result.features, feast.depth_features_dir(), day, instrument)
    frame = result.features
    covered = int(frame["depth_covered"].sum()) if frame.height else 0
    metadata = {
        **gold_metadata(result, export),
        "covered_seconds": dg.MetadataValue.int(covered),
    }
    if frame.height:
        metadata["depth_imb_5 (day)"] = dg.MetadataValue.text(sparkline(frame["depth_imb_5"]))
    return dg.MaterializeResult(metadata=metadata)
