"""``python -m trading_assets.migrate_instruments [--dry-run]``: move an installation from bare
symbols to instrument ids (see :mod:`trading_assets.lib.instrument_migration`).

It migrates the Iceberg tables, the landed segments, Feast's offline files and the Dagster
instance's partition history, prints what it moved and any conflict it left, and exits 1 when
there was a conflict. Run it once with nothing else running (no sidecar, no Dagster runs); a
second run finds nothing to do. Feast's registry is applied again by the next ``feast_registry``
run, and the online store is refilled by the sidecar's pushes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dagster as dg

from trading_assets.lib.feature_store.gold import gold_table
from trading_assets.lib.instrument_migration import (
    MigrationReport,
    migrate_landing,
    migrate_offline,
    migrate_tables,
)
from trading_assets.lib.instruments import legacy_instrument
from trading_assets.lib.lakehouse.schemas import ALL_TABLES
from trading_assets.lib.settings import load_settings
from trading_assets.resources import build_resources


def migrate_dagster(
    instance: dg.DagsterInstance, report: MigrationReport, *, dry_run: bool = False
) -> None:
    """Report each partition materialized under ``<day>|<SYMBOL>`` as materialized under
    ``<day>|BINANCE:<SYMBOL>``, naming the old key (see the module)."""
    for key in instance.get_asset_keys():
        done = instance.get_materialized_partitions(key)
        for old in sorted(done):
            day, sep, symbol = old.partition("|")
            if not sep or ":" in symbol or "|" in symbol:
                continue
            new = f"{day}|{legacy_instrument(symbol)}"
            if new in done:
                continue
            report.dagster_partitions.append((key.to_user_string(), old, new))
            if not dry_run:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        asset_key=key, partition=new, metadata={"migrated_from": old}
                    )
                )


def migrate(
    instance: dg.DagsterInstance, *, dry_run: bool = False, resources: dict | None = None
) -> MigrationReport:
    """Every step of the migration, in order; the report of what moved."""
    settings = load_settings()
    resources = resources if resources is not None else build_resources(settings)
    report = MigrationReport()
    lake = resources["iceberg"].lakehouse()
    migrate_tables(lake.catalog, [*ALL_TABLES, gold_table()], report, dry_run=dry_run)
    migrate_landing(settings.landing_uri, report, dry_run=dry_run)
    migrate_offline(resources["feast"].offline_features_dir(), report, dry_run=dry_run)
    migrate_dagster(instance, report, dry_run=dry_run)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trading_assets.migrate_instruments",
        description="Move tables, landed segments, offline features and Dagster partitions "
        "from bare symbols to instrument ids (BTCUSDT -> BINANCE:BTCUSDT).",
    )
    parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        report = migrate(instance, dry_run=args.dry_run)
    verb = "would move" if args.dry_run else "moved"
    for name in report.renamed_columns:
        print(f"{name}: column symbol -> instrument")
    for table, day, symbol, rows in report.partitions:
        print(f"{table} {day}: {symbol} -> {legacy_instrument(symbol)} ({rows} rows)")
    for source, target in report.files:
        print(f"{source} -> {target}")
    for asset, old, new in report.dagster_partitions:
        print(f"{asset}: {old} -> {new}")
    for conflict in report.conflicts:
        print(f"conflict: {conflict}", file=sys.stderr)
    print(f"{verb} {report.moved} item(s), {len(report.conflicts)} conflict(s)")
    return 1 if report.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
