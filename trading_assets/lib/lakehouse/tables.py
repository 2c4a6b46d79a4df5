"""Open the Iceberg catalog, create the lakehouse tables, and replace one partition atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence

import polars as pl
import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
from pyiceberg.expressions import And, BooleanExpression, EqualTo
from pyiceberg.io.pyarrow import PyArrowFileIO, write_file
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import Table, TableProperties, Transaction, WriteTask
from pyiceberg.utils.properties import property_as_bool, property_as_int

from trading_assets.lib.lakehouse.schemas import ALL_TABLES, TableDef

TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    # Backfills write neighbouring partitions of one table concurrently; a lost optimistic commit
    # is retried against the new metadata (pyiceberg re-runs the snapshot producers).
    "commit.retry.num-retries": "10",
    "commit.retry.min-wait-ms": "50",
    "commit.retry.max-wait-ms": "2000",
    # One commit per partition write adds manifests; merging keeps scan planning cheap over years.
    "commit.manifest-merge.enabled": "true",
}


ROWS_PER_PARALLEL_FILE = 500_000


def open_catalog(name: str, properties: Mapping[str, str]) -> Catalog:
    """Load a pyiceberg catalog; ``properties`` hold type, uri, warehouse and FileIO settings."""
    return load_catalog(name, **dict(properties))


def ensure_table(catalog: Catalog, table: TableDef) -> Table:
    """Return the table, creating its namespace and the table itself on first use."""
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(table.namespace)
    try:
        return catalog.create_table(
            table.identifier,
            schema=table.schema,
            partition_spec=table.partition_spec(),
            properties=TABLE_PROPERTIES,
        )
    except TableAlreadyExistsError:
        return catalog.load_table(table.identifier)


def ensure_all_tables(catalog: Catalog) -> dict[str, Table]:
    return {table.identifier: ensure_table(catalog, table) for table in ALL_TABLES}


def partition_filter(day: dt.date, symbol: str) -> BooleanExpression:
    # pyiceberg's predicates are pydantic models whose __init__ pyright does not see.
    on_day = EqualTo("trade_date", day.isoformat())  # pyright: ignore[reportCallIssue]
    on_symbol = EqualTo("symbol", symbol)  # pyright: ignore[reportCallIssue]
    return And(on_day, on_symbol)


def replace_partition(table: Table, day: dt.date, symbol: str, chunks: Iterable[pa.Table]) -> int:
    """Replace the (day, symbol) partition with ``chunks`` in one catalog commit; return row count.

    The delete and the appends are staged in a single transaction, committed only when every
    chunk was written: a failure midway (bad input, full disk, killed process) leaves the previous
    partition untouched, and re-running never duplicates rows. Chunks must already have the
    table's Arrow schema (see ``Schema.as_arrow``) and hold only this partition's rows.
    """
    rows = 0
    with table.transaction() as tx:
        with warnings.catch_warnings():
            # The first write of a partition has nothing to delete, which pyiceberg warns about.
            warnings.filterwarnings("ignore", message="Delete operation did not match any records")
            tx.delete(partition_filter(day, symbol))
        for chunk in chunks:
            if chunk.num_rows:
                _append_partition_files(tx, table, day, symbol, chunk)
                rows += chunk.num_rows
    return rows


def _append_partition_files(
    tx: Transaction, table: Table, day: dt.date, symbol: str, data: pa.Table
) -> None:
    """Write ``data`` as data files of one known partition and stage their append.

    pyiceberg's generic append first splits a table by partition (a full filter and copy of the
    data); all rows here share one partition, so the files are written directly.
    """
    for column, expected in (("trade_date", day), ("symbol", symbol)):
        values = data.column(column).unique().to_pylist()
        if values != [expected]:
            raise ValueError(f"{column} values {values[:5]} do not all equal {expected!r}")
    metadata = tx.table_metadata
    spec, schema = metadata.spec(), metadata.schema()
    key = PartitionKey(
        field_values=[
            PartitionFieldValue(field=field, value=day if field.name == "trade_date" else symbol)
            for field in spec.fields
        ],
        partition_spec=spec,
        schema=schema,
    )
    target_size = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    # Parquet encodes one file on one thread: a big partition is cut into one file per core
    # (pyiceberg writes the tasks concurrently), or more when the target file size asks for it.
    parts = max(
        math.ceil(data.nbytes / max(target_size or 1, 1)),
        min(os.cpu_count() or 1, data.num_rows // ROWS_PER_PARALLEL_FILE),
        1,
    )
    step = math.ceil(data.num_rows / parts)
    update = tx.update_snapshot()
    merge = property_as_bool(
        metadata.properties,
        TableProperties.MANIFEST_MERGE_ENABLED,
        TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
    )
    with update.merge_append() if merge else update.fast_append() as append:
        tasks = (
            WriteTask(
                write_uuid=append.commit_uuid,
                task_id=task_id,
                schema=schema,
                record_batches=batches,
                partition_key=key,
            )
            for task_id, batches in enumerate(
                data.slice(offset, step).to_batches() for offset in range(0, data.num_rows, step)
            )
        )
        files: list[DataFile] = list(write_file(table.io, metadata, tasks))
        for data_file in files:
            append.append_data_file(data_file)


def read_partition(
    table: Table,
    day: dt.date,
    symbol: str,
    columns: Sequence[str] | None = None,
    where: pl.Expr | None = None,
) -> pl.DataFrame:
    """Read one partition as a polars frame (only its rows matching ``where``, when given).

    Partitions are only ever replaced whole (no delete files, no row rewrites), so while the
    table keeps its original schema the planned data files are read directly by polars' Parquet
    reader, several times faster than pyiceberg's Arrow scan. Anything else (delete files, an
    evolved schema) takes pyiceberg's full scan.
    """
    table = table.refresh()
    row_filter = partition_filter(day, symbol)
    selected = list(columns) if columns else [f.name for f in table.schema().fields]
    tasks = list(table.scan(row_filter=row_filter).plan_files())
    if len(table.metadata.schemas) == 1 and not any(task.delete_files for task in tasks):
        if not tasks:
            return pl.DataFrame(schema=_polars_schema(table, selected))
        sources = [_parquet_source(table, task.file.file_path) for task in tasks]
        if where is None:
            return pl.read_parquet(sources, columns=selected, hive_partitioning=False)  # type: ignore
        # Filtered while reading: the other columns are decoded for the matching rows only, so a
        # slice of a busy day never holds the whole day in memory.
        scan = pl.scan_parquet(sources, hive_partitioning=False)  # type: ignore[arg-type]
        return scan.filter(where).select(selected).collect()
    frame = pl.from_arrow(
        table.scan(row_filter=row_filter, selected_fields=tuple(selected)).to_arrow()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame if where is None else frame.filter(where)


def _parquet_source(table: Table, location: str) -> str | bytes:
    """A local path as is; remote objects (s3://...) fetched through the table's FileIO."""
    scheme, _, path = PyArrowFileIO.parse_location(location)
    if scheme == "file":
        return path
    with table.io.new_input(location).open(seekable=False) as stream:
        return stream.read()


def _polars_schema(table: Table, columns: Sequence[str]) -> pl.Schema:
    empty = pl.from_arrow(table.schema().as_arrow().empty_table())
    assert isinstance(empty, pl.DataFrame)
    return empty.select(columns).schema


def count_partition(table: Table, day: dt.date, symbol: str) -> int:
    """Row count from the manifests' file statistics, without reading data files."""
    tasks = table.refresh().scan(row_filter=partition_filter(day, symbol)).plan_files()
    return sum(task.file.record_count for task in tasks)
