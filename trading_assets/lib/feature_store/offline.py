"""The Feast offline copy of gold features: one parquet file per day × symbol, replaced whole.

A partition file is written under a hidden name (``.`` prefix: Parquet dataset readers skip it)
and renamed over the old one, so a reader sees either the previous or the new partition, never
half of one and never both (on an object store the final PUT is the atomic step).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trading_assets.lib.feature_store.spec import ENTITY, TIMESTAMP_FIELD

FILE_SUFFIX = ".parquet"


@dataclass(frozen=True)
class ExportResult:
    """Where a partition was exported and how many rows it holds."""

    path: str
    rows: int


def partition_file(directory: str, day: dt.date, symbol: str) -> str:
    """``<directory>/<day>_<symbol>.parquet``: names sort by day, then symbol."""
    return f"{directory.rstrip('/')}/{day.isoformat()}_{symbol}{FILE_SUFFIX}"


def filesystem_for(location: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or a URI (s3://...)."""
    return pafs.FileSystem.from_uri(location if "://" in location else f"file://{location}")


def write_parquet_atomic(data: pa.Table, target: str) -> None:
    """Write ``target`` under a hidden staged name, then rename it into place."""
    fs, target_path = filesystem_for(target)
    folder, name = target_path.rsplit("/", 1)
    fs.create_dir(folder, recursive=True)
    staged = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(data, staged, filesystem=fs, compression="zstd")
        fs.move(staged, target_path)
    finally:
        if fs.get_file_info(staged).type != pafs.FileType.NotFound:
            fs.delete_file(staged)


def export_partition(
    frame: pl.DataFrame, directory: str, day: dt.date, symbol: str
) -> ExportResult:
    """Replace the partition's file with ``frame`` (``symbol``, ``event_timestamp``, features);
    an empty frame removes the file (Feast's readers choke on empty files' null types)."""
    target = partition_file(directory, day, symbol)
    if frame.is_empty():
        fs, target_path = filesystem_for(target)
        if fs.get_file_info(target_path).type != pafs.FileType.NotFound:
            fs.delete_file(target_path)
        return ExportResult(target, 0)
    data = frame.with_columns(
        pl.col(TIMESTAMP_FIELD).cast(pl.Datetime("us", "UTC")), pl.col(ENTITY).cast(pl.String)
    ).to_arrow()
    write_parquet_atomic(data, target)
    return ExportResult(target, frame.height)


def list_partitions(directory: str) -> list[str]:
    """Exported partition files, sorted (the names sort by day, then symbol)."""
    fs, path = filesystem_for(directory)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    selector = pafs.FileSelector(path, recursive=False)
    files = [
        info.path
        for info in fs.get_file_info(selector)
        if info.base_name.endswith(FILE_SUFFIX) and not info.base_name.startswith((".", "_"))
    ]
    prefix = directory[: len(directory) - len(path)] if "://" in directory else ""
    return sorted(prefix + f for f in files)


def parse_partition_name(location: str) -> tuple[dt.date, str]:
    """``.../2024-03-01_BTCUSDT.parquet`` → (2024-03-01, "BTCUSDT")."""
    stem = location.rsplit("/", 1)[-1].removesuffix(FILE_SUFFIX)
    day, symbol = stem.split("_", 1)
    return dt.date.fromisoformat(day), symbol


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
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
