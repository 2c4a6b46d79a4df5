"""The Feast offline copy of gold features: one parquet file per day × instrument, replaced whole.

A partition file is replaced atomically (see :mod:`trading_assets.lib.storage`), so a reader sees
either the previous or the new partition, never half of one and never both; staged files carry
hidden names, which Parquet dataset readers skip.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from trading_assets.lib import storage
from trading_assets.lib.feature_store.spec import ENTITY, TIMESTAMP_FIELD
from trading_assets.lib.instruments import from_path_name, path_name
from trading_assets.lib.storage import filesystem_for

__all__ = [
    "FILE_SUFFIX",
    "ExportResult",
    "export_partition",
    "filesystem_for",
    "list_partitions",
    "newest_event_time",
    "newest_event_times",
    "parquet_columns",
    "parse_partition_name",
    "partition_file",
    "read_frame",
    "read_offline",
    "write_parquet_atomic",
]

FILE_SUFFIX = ".parquet"


@dataclass(frozen=True)
class ExportResult:
    """Where a partition was exported and how many rows it holds."""

    path: str
    rows: int


def partition_file(directory: str, day: dt.date, instrument: str) -> str:
    """``<directory>/<day>_<instrument>.parquet`` (the instrument as a path name, so
    ``KRAKEN:BTC%2FUSD``): names sort by day, then instrument."""
    return storage.join(directory, f"{day.isoformat()}_{path_name(instrument)}{FILE_SUFFIX}")


def write_parquet_atomic(data: pa.Table, target: str) -> None:
    """Replace the Parquet file ``target`` (a path or URI) with ``data``, atomically."""
    # Serialized first, so the replacement is one atomic write (one upload on S3); compressed
    # Parquet is a fraction of the table already held in memory.
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink, compression="zstd")
    storage.write_bytes_atomic(target, memoryview(sink.getvalue()))


def read_frame(location: str) -> pl.DataFrame:
    """The Parquet file at ``location`` (a path or URI) as a frame; FileNotFoundError if absent."""
    return pl.read_parquet(storage.read_bytes(location))


def parquet_columns(location: str) -> list[str] | None:
    """The column names of the Parquet file at ``location`` (from its footer); None if absent."""
    if not storage.exists(location):
        return None
    fs, path = filesystem_for(location)
    with fs.open_input_file(path) as source:
        return list(pq.read_schema(source).names)


def export_partition(
    frame: pl.DataFrame, directory: str, day: dt.date, symbol: str
) -> ExportResult:
    """Replace the partition's file with ``frame`` (``symbol``, ``event_timestamp``, features);
    an empty frame removes the file (Feast's readers choke on empty files' null types)."""
    target = partition_file(directory, day, symbol)
    if frame.is_empty():
        storage.delete(target)
        return ExportResult(target, 0)
    data = frame.with_columns(
        pl.col(TIMESTAMP_FIELD).cast(pl.Datetime("us", "UTC")), pl.col(ENTITY).cast(pl.String)
    ).to_arrow()
    write_parquet_atomic(data, target)
    return ExportResult(target, frame.height)


def list_partitions(directory: str) -> list[str]:
    """Exported partition files, sorted (the names sort by day, then symbol)."""
    return storage.list_files(directory, FILE_SUFFIX)


def parse_partition_name(location: str) -> tuple[dt.date, str]:
    """``.../2024-03-01_BINANCE:BTCUSDT.parquet`` → (2024-03-01, "BINANCE:BTCUSDT"); a name
    from before instrument ids (``2024-03-01_BTCUSDT``) is a Binance spot one."""
    stem = location.rsplit("/", 1)[-1].removesuffix(FILE_SUFFIX)
    day, name = stem.split("_", 1)
    return dt.date.fromisoformat(day), from_path_name(name)


def newest_event_times(directory: str) -> dict[str, dt.datetime]:
    """Latest event timestamp of each symbol over its exported partitions, from Parquet footers."""
    newest: dict[str, dt.datetime] = {}
    for location in list_partitions(directory):
        _, symbol = parse_partition_name(location)
        fs, path = filesystem_for(location)
        with fs.open_input_file(path) as source:
            metadata = pq.read_metadata(source)
        column = metadata.schema.to_arrow_schema().get_field_index(TIMESTAMP_FIELD)
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                continue
            value = stats.max
            if isinstance(value, dt.datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            if isinstance(value, dt.datetime) and (symbol not in newest or value > newest[symbol]):
                newest[symbol] = value
    return newest


def newest_event_time(directory: str) -> dt.datetime | None:
    """Latest event timestamp over every exported partition."""
    return max(newest_event_times(directory).values(), default=None)


def read_offline(directory: str) -> pl.DataFrame:
    """Every exported partition as one frame (tests and small checks; Feast reads it itself)."""
    files = list_partitions(directory)
    if not files:
        return pl.DataFrame()
    return pl.concat([read_frame(f) for f in files], how="vertical_relaxed")
