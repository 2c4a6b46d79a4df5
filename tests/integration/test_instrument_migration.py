"""An installation from before instrument ids, migrated: every row, landed segment, offline file
and Dagster partition is under its instrument afterwards, nothing is lost, conflicts are left and
named, and a second run moves nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import NestedField

from trading_assets.lib.feature_store.gold import gold_table
from trading_assets.lib.instrument_migration import (
    MigrationReport,
    migrate_landing,
    migrate_offline,
    migrate_tables,
)
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE, BRONZE_TRADES_TABLE, TableDef
from trading_assets.lib.lakehouse.tables import open_catalog, read_partition
from trading_assets.migrate_instruments import migrate_dagster

DAY = dt.date(2024, 3, 1)
NEXT_DAY = DAY + dt.timedelta(days=1)
LEGACY = ("BTCUSDT", "ETHUSDT")


def legacy_schema(table: TableDef) -> Schema:
    """The table's schema as it was: field 2 called ``symbol``."""
    return Schema(
        *(
            NestedField(
                f.field_id,
                "symbol" if f.field_id == 2 else f.name,
                f.field_type,
                required=f.required,
            )
            for f in table.schema.fields
        )
    )


def legacy_spec() -> PartitionSpec:
    return PartitionSpec(
        PartitionField(1, 1000, IdentityTransform(), "trade_date"),
        PartitionField(2, 1001, IdentityTransform(), "symbol"),
    )


def value_of(field: NestedField, row: int) -> object:
    kind = str(field.field_type)
    if field.name == "trade_date" or kind == "date":
        return DAY
    if kind.startswith("timestamp"):
        return dt.datetime(2024, 3, 1, 0, 0, row, tzinfo=dt.UTC)
    if kind in ("long", "int"):
        return row
    if kind in ("double", "float"):
        return row + 0.5
    if kind == "boolean":
        return row % 2 == 0
    return f"{field.name}-{row}"


def legacy_table(catalog: Catalog, table: TableDef, rows: dict[tuple[dt.date, str], int]) -> Table:
    """A table in the old shape, holding ``rows`` rows for each (day, symbol)."""
    catalog.create_namespace_if_not_exists(table.namespace)
    created = catalog.create_table(
        table.identifier, legacy_schema(table), partition_spec=legacy_spec()
    )
    schema = created.schema()
    records = [
        {f.name: value_of(f, i) for f in schema.fields} | {"trade_date": day, "symbol": symbol}
        for (day, symbol), count in rows.items()
        for i in range(count)
    ]
    created.append(pa.Table.from_pylist(records, schema=schema.as_arrow()))
    return created


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    uri = f"sqlite:///{tmp_path}/catalog.db"
    return open_catalog("test", {"type": "sql", "uri": uri, "warehouse": warehouse.as_uri()})


def _name(table: Table) -> str:
    return ".".join(table.name()[-2:])


def landed(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_legacy_installation_is_moved_to_instrument_ids_with_nothing_lost(
    catalog: Catalog, tmp_path: Path
) -> None:
    # Arrange: two tables, landed segments, an offline file and Dagster partitions, all legacy
    bronze = legacy_table(catalog, BRONZE_TRADES_TABLE, {(DAY, "BTCUSDT"): 7, (DAY, "ETHUSDT"): 5})
    bars = legacy_table(catalog, BARS_1S_TABLE, {(DAY, "BTCUSDT"): 3, (NEXT_DAY, "BTCUSDT"): 4})
    partitions = [
        (bronze, DAY, "BTCUSDT", 7), (bronze, DAY, "ETHUSDT", 5),
        (bars, DAY, "BTCUSDT", 3), (bars, NEXT_DAY, "BTCUSDT", 4),
    ]  # fmt: skip
    rows_before = {
        (_name(t), day, symbol): t.scan(row_filter=f"trade_date = '{day}' and symbol = '{symbol}'")
        .to_polars()
        .drop("symbol")
        for t, day, symbol, _ in partitions
    }
    landing = tmp_path / "landing"
    for symbol in LEGACY:
        for name in ("0001-1-0.jsonl", "0002-1-1.jsonl"):
            path = landing / "trades" / symbol / DAY.isoformat() / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f'{{"symbol":"{symbol}","trade_id":1}}\n'.encode())
    segments_before = landed(landing)
    offline = tmp_path / "offline"
    offline.mkdir()
    pq.write_table(
        pa.table({"symbol": ["BTCUSDT"] * 2, "mom_10s": [0.1, 0.2]}),
        offline / f"{DAY.isoformat()}_BTCUSDT.parquet",
    )
    instance = dg.DagsterInstance.ephemeral()
    for symbol in LEGACY:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("bronze_trades", partition=f"{DAY.isoformat()}|{symbol}")
        )
    names = [BRONZE_TRADES_TABLE, BARS_1S_TABLE, gold_table()]

    # Act: a dry run, the migration, and the migration again
    dry = MigrationReport()
    migrate_tables(catalog, names, dry, dry_run=True)
    migrate_landing(str(landing), dry, dry_run=True)
    migrate_offline(str(offline), dry, dry_run=True)
    migrate_dagster(instance, dry, dry_run=True)
    unchanged_by_dry_run = landed(landing) == segments_before and "symbol" in {
        f.name for f in catalog.load_table(BRONZE_TRADES_TABLE.identifier).schema().fields
    }
    report = MigrationReport()
    migrate_tables(catalog, names, report)
    migrate_landing(str(landing), report)
    migrate_offline(str(offline), report)
    migrate_dagster(instance, report)
    again = MigrationReport()
    migrate_tables(catalog, names, again)
    migrate_landing(str(landing), again)
    migrate_offline(str(offline), again)
    migrate_dagster(instance, again)

    # Assert
    assert unchanged_by_dry_run and dry.moved == report.moved > 0
    assert report.conflicts == [] and again.moved == 0 and again.renamed_columns == []
    assert sorted(report.renamed_columns) == ["bronze.trades", "silver.bars_1s"]
    for table, day, symbol, rows in partitions:
        migrated = catalog.load_table(_name(table))
        assert "symbol" not in {f.name for f in migrated.schema().fields}
        moved = read_partition(migrated, day, f"BINANCE:{symbol}")
        assert moved["instrument"].to_list() == [f"BINANCE:{symbol}"] * rows
        assert read_partition(migrated, day, symbol).height == 0
        before = rows_before[(_name(table), day, symbol)]
        after = moved.drop("instrument").select(before.columns)
        assert after.sort(after.columns).equals(before.sort(before.columns))
    assert landed(landing) == {
        key.replace(f"trades/{s}/", f"trades/BINANCE:{s}/"): data
        for key, data in segments_before.items()
        for s in LEGACY
        if f"/{s}/" in key
    }
    (moved_file,) = offline.iterdir()
    assert moved_file.name == f"{DAY.isoformat()}_BINANCE:BTCUSDT.parquet"
    assert pl.read_parquet(moved_file)["instrument"].to_list() == ["BINANCE:BTCUSDT"] * 2
    assert instance.get_materialized_partitions(dg.AssetKey("bronze_trades")) >= {
        f"{DAY.isoformat()}|BINANCE:{s}" for s in LEGACY
    }


def test_a_run_cut_short_is_taken_up_again_and_a_moved_file_in_the_way_is_left_and_named(
    catalog: Catalog, tmp_path: Path
) -> None:
    # Arrange: a legacy table whose first copy stopped half way (a partial staging table), and a
    # landed segment that also exists at its new place
    legacy_table(catalog, BARS_1S_TABLE, {(DAY, "BTCUSDT"): 3, (NEXT_DAY, "BTCUSDT"): 2})
    partial = catalog.create_table(
        f"{BARS_1S_TABLE.identifier}__instruments", BARS_1S_TABLE.schema,
        partition_spec=BARS_1S_TABLE.partition_spec(),
    )  # fmt: skip
    partial.append(
        pa.Table.from_pylist(
            [{f.name: value_of(f, 9) for f in partial.schema().fields} | {"instrument": "X:Y"}],
            schema=partial.schema().as_arrow(),
        )
    )
    landing = tmp_path / "landing"
    for folder, data in (("BTCUSDT", b"legacy\n"), ("BINANCE:BTCUSDT", b"new\n")):
        path = landing / "trades" / folder / DAY.isoformat() / "0001-1-0.jsonl"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)

    # Act
    report = MigrationReport()
    migrate_tables(catalog, [BARS_1S_TABLE], report)
    migrate_landing(str(landing), report)

    # Assert: the copy started afresh (the partial row is gone), every row is there once
    table = catalog.load_table(BARS_1S_TABLE.identifier)
    assert read_partition(table, DAY, "BINANCE:BTCUSDT").height == 3
    assert read_partition(table, NEXT_DAY, "BINANCE:BTCUSDT").height == 2
    assert read_partition(table, DAY, "X:Y").height == 0
    (conflict,) = report.conflicts
    assert "BINANCE:BTCUSDT/2024-03-01/0001-1-0.jsonl exists" in conflict
    assert (landing / "trades/BTCUSDT/2024-03-01/0001-1-0.jsonl").read_bytes() == b"legacy\n"
    assert (landing / "trades/BINANCE:BTCUSDT/2024-03-01/0001-1-0.jsonl").read_bytes() == b"new\n"
