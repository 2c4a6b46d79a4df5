"""Moving what was stored under bare symbols to instrument ids, with nothing lost or renamed
silently.

Before venues, every table, landed segment, offline feature file and Dagster partition named a
bare symbol (``BTCUSDT``), all of them Binance spot's. :func:`migrate` moves each to the
instrument it was (``BINANCE:BTCUSDT``):

- **Iceberg tables**: a table keyed by ``symbol`` is copied, partition by partition, into a
  table of the current schema keyed by ``instrument`` (each copy's row count checked), which
  then takes the old table's name.
- **Landed segments** (local folder or object store): ``<kind>/<SYMBOL>/...`` moves to
  ``<kind>/BINANCE:<SYMBOL>/...``, file by file; a file already at its new place is a conflict.
- **Feast's offline files**: ``<day>_<SYMBOL>.parquet`` is rewritten as
  ``<day>_BINANCE:<SYMBOL>.parquet`` with its ``symbol`` column renamed and its values mapped.
- **Dagster**: each partition materialized under ``<day>|<SYMBOL>`` is reported materialized
  under ``<day>|BINANCE:<SYMBOL>`` (metadata ``migrated_from`` names the old key), so the UI
  shows the history it has.

Every step is idempotent: a second run finds nothing left to move. ``dry_run`` reports what a
run would move and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import And, EqualTo
from pyiceberg.table import Table

from trading_assets.lib import storage
from trading_assets.lib.instruments import legacy_instrument, path_name
from trading_assets.lib.lakehouse.pipeline import to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import TableDef
from trading_assets.lib.lakehouse.tables import PartitionWriter, count_partition, ensure_table

STAGING_SUFFIX = "__instruments"
LEGACY_COLUMN = "symbol"
COLUMN = "instrument"
DAY_COLUMN = "trade_date"


@dataclass
class MigrationReport:
    """What was moved (or, in a dry run, would be), and what was left because of a conflict."""

    renamed_columns: list[str] = field(default_factory=list)
    partitions: list[tuple[str, dt.date, str, int]] = field(default_factory=list)
    """(table, day, legacy symbol, rows) of each partition copied under its instrument."""
    files: list[tuple[str, str]] = field(default_factory=list)
    """(from, to) of each landed segment and offline file moved."""
    dagster_partitions: list[tuple[str, str, str]] = field(default_factory=list)
    """(asset, legacy key, new key) of each partition reported under its new key."""
    conflicts: list[str] = field(default_factory=list)

    @property
    def moved(self) -> int:
        return len(self.partitions) + len(self.files) + len(self.dagster_partitions)


def _is_legacy(name: str) -> bool:
    return ":" not in name


def migrate_table(
    catalog: Catalog, table_def: TableDef, report: MigrationReport, *, dry_run: bool = False
) -> None:
    """Copy a table keyed by ``symbol`` into a new one keyed by ``instrument``, partition by
    partition with its row count checked, then put the new one in its place (see module).

    The copy keeps the table on its original schema (no renamed column to map on every read);
    the old table's snapshots are not carried over. A run cut short leaves the old table as it
    was and the copy under ``<name>__instruments``, which the next run starts again."""
    staging = f"{table_def.identifier}{STAGING_SUFFIX}"
    try:
        table = catalog.load_table(table_def.identifier)
    except NoSuchTableError:
        if catalog.table_exists(staging) and not dry_run:  # cut short between drop and rename
            catalog.rename_table(staging, table_def.identifier)
        return
    if LEGACY_COLUMN not in {f.name for f in table.schema().fields}:
        return
    report.renamed_columns.append(table_def.identifier)
    partitions = _partitions(table, LEGACY_COLUMN)
    for day, symbol, rows in partitions:
        report.partitions.append((table_def.identifier, day, symbol, rows))
    if dry_run:
        return
    if catalog.table_exists(staging):
        catalog.drop_table(staging)
    copy = ensure_table(catalog, TableDef(staging, table_def.schema))
    for day, symbol, rows in partitions:
        instrument = symbol if not _is_legacy(symbol) else legacy_instrument(symbol)
        where = And(EqualTo(DAY_COLUMN, day), EqualTo(LEGACY_COLUMN, symbol))  # pyright: ignore[reportCallIssue]
        frame = pl.from_arrow(table.scan(row_filter=where).to_arrow())
        assert isinstance(frame, pl.DataFrame)
        renamed = frame.drop(LEGACY_COLUMN).with_columns(pl.lit(instrument).alias(COLUMN))
        writer = PartitionWriter(copy, day, instrument)
        writer.write(to_iceberg_arrow(renamed, copy.schema()))
        writer.commit()
        copied = count_partition(copy, day, instrument)
        if copied != rows:
            raise RuntimeError(
                f"{table_def.identifier} {day}: {rows} rows of {symbol}, {copied} copied"
            )
    catalog.drop_table(table_def.identifier)
    catalog.rename_table(staging, table_def.identifier)


def _partitions(table: Table, column: str) -> list[tuple[dt.date, str, int]]:
    """The (day, key, rows) of the partitions holding data, from the table's metadata."""
    if table.current_snapshot() is None:
        return []
    listed = table.inspect.partitions().select(["partition", "record_count"]).to_pylist()
    # A file written before the partition field's rename names it by its old name.
    return sorted(
        (part[DAY_COLUMN], part[column] if column in part else part[LEGACY_COLUMN], count)
        for row in listed
        if (count := row["record_count"]) and (part := row["partition"])
    )


def _name(table: Table) -> str:
    return ".".join(table.name()[-2:])


def migrate_tables(
    catalog: Catalog,
    tables: Iterable[TableDef],
    report: MigrationReport,
    *,
    dry_run: bool = False,
) -> None:
    for table_def in tables:
        migrate_table(catalog, table_def, report, dry_run=dry_run)


def migrate_landing(location: str, report: MigrationReport, *, dry_run: bool = False) -> None:
    """Move ``<kind>/<SYMBOL>/...`` to ``<kind>/BINANCE:<SYMBOL>/...`` under a landing root."""
    fs, root = storage.filesystem_for(location)
    for kind in _folders(fs, root):
        for folder in _folders(fs, f"{root}/{kind}"):
            if not _is_legacy(folder):
                continue
            target = path_name(legacy_instrument(folder))
            selector = pafs.FileSelector(f"{root}/{kind}/{folder}", recursive=True)
            for info in fs.get_file_info(selector):
                if info.type != pafs.FileType.File:
                    continue
                below = info.path.removeprefix(f"{root}/{kind}/{folder}/")
                _move(fs, info.path, f"{root}/{kind}/{target}/{below}", report, dry_run=dry_run)
            if not dry_run and not _files_under(fs, f"{root}/{kind}/{folder}"):
                fs.delete_dir(f"{root}/{kind}/{folder}")


def migrate_offline(directory: str, report: MigrationReport, *, dry_run: bool = False) -> None:
    """Rewrite ``<day>_<SYMBOL>.parquet`` as ``<day>_BINANCE:<SYMBOL>.parquet``, renamed inside."""
    fs, path = storage.filesystem_for(directory)
    for location in storage.list_files(directory, ".parquet"):
        stem = location.rsplit("/", 1)[-1].removesuffix(".parquet")
        day, _, symbol = stem.partition("_")
        if not symbol or not _is_legacy(symbol):
            continue
        instrument = legacy_instrument(symbol)
        source = f"{path}/{stem}.parquet"
        target = f"{path}/{day}_{path_name(instrument)}.parquet"
        if fs.get_file_info(target).type != pafs.FileType.NotFound:
            report.conflicts.append(f"{target} exists: {source} left as it is")
            continue
        report.files.append((source, target))
        if dry_run:
            continue
        with fs.open_input_file(source) as handle:
            frame = pq.read_table(handle)
        if LEGACY_COLUMN in frame.column_names:
            index = frame.column_names.index(LEGACY_COLUMN)
            values = pc.cast(pa.array([instrument] * frame.num_rows), pa.string())
            frame = frame.set_column(index, COLUMN, values)
        with fs.open_output_stream(target) as out:
            pq.write_table(frame, out)
        fs.delete_file(source)


def _move(
    fs: pafs.FileSystem, source: str, target: str, report: MigrationReport, *, dry_run: bool
) -> None:
    if fs.get_file_info(target).type != pafs.FileType.NotFound:
        report.conflicts.append(f"{target} exists: {source} left as it is")
        return
    report.files.append((source, target))
    if not dry_run:
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        fs.move(source, target)


def _folders(fs: pafs.FileSystem, path: str) -> list[str]:
    selector = pafs.FileSelector(path, recursive=False, allow_not_found=True)
    return sorted(
        i.base_name for i in fs.get_file_info(selector) if i.type == pafs.FileType.Directory
    )


def _files_under(fs: pafs.FileSystem, path: str) -> bool:
    selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    return any(i.type == pafs.FileType.File for i in fs.get_file_info(selector))
