"""Open the Iceberg catalog, create the lakehouse tables, and replace one partition atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence

import polars as pl
import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
from pyiceberg.expressions import And, BooleanExpression, EqualTo
from pyiceberg.io.pyarrow import PyArrowFileIO, write_file
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import FileScanTask, Table, TableProperties, WriteTask
from pyiceberg.types import PrimitiveType
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


ROWS_PER_PARALLEL_FILE = 250_000


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
    on_symbol = EqualTo("instrument", symbol)  # pyright: ignore[reportCallIssue]
    return And(on_day, on_symbol)


def replace_partition(table: Table, day: dt.date, symbol: str, chunks: Iterable[pa.Table]) -> int:
    """Replace the (day, symbol) partition with ``chunks`` in one catalog commit; return row count.

    Chunks must already have the table's Arrow schema (see ``Schema.as_arrow``) and hold only
    this partition's rows. See :class:`PartitionWriter` for what a failure midway leaves.
    """
    writer = PartitionWriter(table, day, symbol)
    for chunk in chunks:
        writer.write(chunk)
    return writer.commit()


class PartitionWriter:
    """Replaces one (day, symbol) partition with rows handed over chunk by chunk.

    Each chunk is written as data files at once, so only the chunk in hand is in memory however
    big the day; ``commit`` then stages the delete of the old partition and one append of every
    file in a single transaction. A failure before the commit (bad input, full disk, killed
    process) leaves the previous partition untouched, and re-running never duplicates rows; the
    files already written stay uncommitted, as any failed Iceberg write leaves them.
    """

    def __init__(self, table: Table, day: dt.date, symbol: str) -> None:
        self.table, self.day, self.symbol = table, day, symbol
        self._metadata = table.metadata
        self._write_uuid = uuid.uuid4()
        self._task_ids = itertools.count()
        self._files: list[DataFile] = []
        self.rows = 0

    def write(self, chunk: pa.Table) -> None:
        """Write one chunk's rows as data files of the partition (not yet committed)."""
        if not chunk.num_rows:
            return
        for column, expected in (("trade_date", self.day), ("instrument", self.symbol)):
            values = chunk.column(column).unique().to_pylist()
            if values != [expected]:
                raise ValueError(f"{column} values {values[:5]} do not all equal {expected!r}")
        schema = self._metadata.schema()
        key = self._partition_key()
        tasks = (
            WriteTask(
                write_uuid=self._write_uuid,
                task_id=next(self._task_ids),
                schema=schema,
                record_batches=batches,
                partition_key=key,
            )
            for batches in self._file_slices(chunk)
        )
        self._files.extend(write_file(self.table.io, self._metadata, tasks))
        self.rows += chunk.num_rows

    def commit(self, also_replacing: BooleanExpression | None = None) -> int:
        """Swap the old partition (and the rows ``also_replacing`` selects) for the written files
        in one commit; return the row count."""
        with self.table.transaction() as tx:
            with warnings.catch_warnings():
                # The first write of a partition has nothing to delete; pyiceberg warns about it.
                warnings.filterwarnings(
                    "ignore", message="Delete operation did not match any records"
                )
                tx.delete(partition_filter(self.day, self.symbol))
                if also_replacing is not None:
                    tx.delete(also_replacing)
            if self._files:
                update = tx.update_snapshot()
                merge = property_as_bool(
                    tx.table_metadata.properties,
                    TableProperties.MANIFEST_MERGE_ENABLED,
                    TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
                )
                with update.merge_append() if merge else update.fast_append() as append:
                    for data_file in self._files:
                        append.append_data_file(data_file)
        return self.rows

    def _partition_key(self) -> PartitionKey:
        """All rows share one partition, so files are written for it directly: pyiceberg's
        generic append would first split the data by partition (a full filter and copy)."""
        spec = self._metadata.spec()
        return PartitionKey(
            field_values=[
                PartitionFieldValue(
                    field=field, value=self.day if field.name == "trade_date" else self.symbol
                )
                for field in spec.fields
            ],
            partition_spec=spec,
            schema=self._metadata.schema(),
        )

    def _file_slices(self, data: pa.Table) -> Iterator[list[pa.RecordBatch]]:
        """Parquet encodes one file on one thread: a big chunk is cut into one file per core
        (pyiceberg writes the tasks concurrently), or more when the target file size asks."""
        target_size = property_as_int(
            self._metadata.properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        parts = max(
            math.ceil(data.nbytes / max(target_size or 1, 1)),
            min(os.cpu_count() or 1, data.num_rows // ROWS_PER_PARALLEL_FILE),
            1,
        )
        step = math.ceil(data.num_rows / parts)
        for offset in range(0, data.num_rows, step):
            yield data.slice(offset, step).to_batches()


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
    tasks = _plan(table, day, symbol)
    selected = _selected(table, columns)
    if _plain(table, tasks):
        return _read_files(table, tasks, selected, where)
    frame = pl.from_arrow(
        table.scan(
            row_filter=partition_filter(day, symbol), selected_fields=tuple(selected)
        ).to_arrow()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame if where is None else frame.filter(where)


def read_partition_chunks(
    table: Table,
    day: dt.date,
    symbol: str,
    order_by: str,
    chunk_rows: int,
    columns: Sequence[str] | None = None,
    align: str | None = None,
) -> Iterator[pl.DataFrame]:
    """The partition in chunks of at most about ``chunk_rows`` rows, in ``order_by`` order.

    Each chunk holds every row whose ``order_by`` value lies in one range, so no value is split
    between chunks (a chunk grows past ``chunk_rows`` only when one value repeats that often);
    with ``align`` (a polars duration such as ``"1s"``) no such time unit is split either. Only
    the key column is read whole; each chunk then reads just the data files whose statistics
    overlap its range, and within them the row groups that do. Rows inside a chunk keep file
    order: sort them if the order matters. A table with delete files or an evolved schema is
    read whole, as one chunk.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    table = table.refresh()
    tasks = _plan(table, day, symbol)
    selected = _selected(table, columns)
    if not tasks:
        return
    if not _plain(table, tasks):
        yield read_partition(table, day, symbol, selected)
        return
    # File by file: a remote file is fetched whole, and only its key column is kept.
    keys = pl.concat([_read_files(table, [task], [order_by], None)[order_by] for task in tasks])
    if align is not None:
        keys = keys.dt.truncate(align)
    starts = _range_starts(keys.to_physical(), chunk_rows)
    dtype = keys.dtype
    del keys
    spans = _file_spans(table, tasks, order_by)
    for index, low in enumerate(starts):
        high = starts[index + 1] if index + 1 < len(starts) else None
        chosen = [
            task
            for task, (first, last) in zip(tasks, spans, strict=True)
            if last >= low and (high is None or first < high)
        ]
        key = pl.col(order_by)
        where = key >= _literal(low, dtype)
        if high is not None:
            where &= key < _literal(high, dtype)
        yield _read_files(table, chosen, selected, where)


def _plan(table: Table, day: dt.date, symbol: str) -> list[FileScanTask]:
    return list(table.scan(row_filter=partition_filter(day, symbol)).plan_files())


def _plain(table: Table, tasks: Sequence[FileScanTask]) -> bool:
    """Whether the data files alone are the partition (original schema, no delete files)."""
    return len(table.metadata.schemas) == 1 and not any(task.delete_files for task in tasks)


def _selected(table: Table, columns: Sequence[str] | None) -> list[str]:
    return list(columns) if columns else [f.name for f in table.schema().fields]


def _read_files(
    table: Table, tasks: Sequence[FileScanTask], selected: list[str], where: pl.Expr | None
) -> pl.DataFrame:
    if not tasks:
        return pl.DataFrame(schema=_polars_schema(table, selected))
    sources = [_parquet_source(table, task.file.file_path) for task in tasks]
    if where is None:
        return pl.read_parquet(sources, columns=selected, hive_partitioning=False)  # type: ignore
    # Filtered while reading: the other columns are decoded for the matching rows only, so a
    # slice of a busy day never holds the whole day in memory.
    scan = pl.scan_parquet(sources, hive_partitioning=False)  # type: ignore[arg-type]
    return scan.filter(where).select(selected).collect()


def _range_starts(keys: pl.Series, chunk_rows: int) -> list[int]:
    """The first key of every ``chunk_rows``-th row in key order, each key once."""
    ordered = keys.sort()
    picks = ordered.gather(list(range(0, ordered.len(), chunk_rows)))
    return [int(value) for value in picks.unique(maintain_order=True).to_list()]


def _file_spans(table: Table, tasks: Sequence[FileScanTask], column: str) -> list[tuple[int, int]]:
    """Each data file's (lowest, highest) ``column`` value from its manifest statistics, as
    integers (µs for times); a file without statistics spans everything."""
    field = table.schema().find_field(column)
    kind = field.field_type
    assert isinstance(kind, PrimitiveType)
    spans = []
    for task in tasks:
        lower = (task.file.lower_bounds or {}).get(field.field_id)
        upper = (task.file.upper_bounds or {}).get(field.field_id)
        spans.append(
            (
                -(2**63) if lower is None else int(from_bytes(kind, lower)),
                2**63 - 1 if upper is None else int(from_bytes(kind, upper)),
            )
        )
    return spans


def _literal(value: int, dtype: pl.DataType) -> pl.Expr:
    """An integer key (µs for times) as a literal of the column's own type, so the Parquet
    reader can compare it with row-group statistics."""
    return pl.lit(pl.Series([value], dtype=pl.Int64).cast(dtype).item(), dtype=dtype)


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
