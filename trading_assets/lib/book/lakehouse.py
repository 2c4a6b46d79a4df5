"""Landed L2 books → bronze → silver, one day × instrument partition at a time, and the checks
that hold silver to itself (see :mod:`trading_assets.lib.book.tables` for the tables).

bronze is rebuilt from every sealed book segment the landing holds for the day and replaced in
one commit per table, so a run is idempotent; a day with nothing captured is an empty partition,
not an error (book data exists only where the sidecar captured it). silver drops repeated lines
(the same diff or snapshot landed twice) and converts the levels to integer units.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl

from trading_assets.lib.book.rebuild import LevelDiff, LevelSnapshot, RebuildReport, rebuild
from trading_assets.lib.book.tables import (
    BRONZE_BOOK_SNAPSHOTS_TABLE,
    BRONZE_BOOK_UPDATES_TABLE,
    LEVEL_COLUMNS,
    SILVER_BOOK_SNAPSHOTS_TABLE,
    SILVER_BOOK_UPDATES_TABLE,
)
from trading_assets.lib.features.live import units_of
from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_SNAPSHOTS_KIND,
    BOOK_UPDATES_KIND,
    LandedSegment,
    list_segments,
    read_complete_lines,
)
from trading_assets.lib.lakehouse.pipeline import (
    Lakehouse,
    PartitionWrite,
    partition_write,
    to_iceberg_arrow,
)
from trading_assets.lib.lakehouse.tables import read_partition, replace_partition

UPDATE_KEYS = ("segment", "final_update_id")
SNAPSHOT_KEYS = ("segment", "kind", "last_update_id", "taken_ns")
NS = 1_000_000_000


class _LandedDiff(msgspec.Struct):
    segment: int
    first_update_id: int
    final_update_id: int
    event_ns: int
    receive_ns: int
    bids: msgspec.Raw
    asks: msgspec.Raw


class _LandedSnapshot(msgspec.Struct):
    segment: int
    kind: str
    last_update_id: int
    taken_ns: int
    bids: msgspec.Raw
    asks: msgspec.Raw
    gap: str | None = None
    lost_ns: int | None = None


@dataclass(frozen=True)
class BookBronzeResult:
    updates: PartitionWrite
    snapshots: PartitionWrite
    landed_segments: int
    last_segment: str | None  # the newest sealed segment's stem taken in


@dataclass(frozen=True)
class BookSilverResult:
    updates: PartitionWrite
    snapshots: PartitionWrite
    repeated_lines: int  # dropped: the same line landed more than once


def _segments(root: Path | str, kind: str, instrument: str, day: dt.date) -> list[LandedSegment]:
    return list_segments(root, kind, instrument=instrument, day=day)


def _rows(segments: list[LandedSegment], struct: type) -> Iterator[tuple[str, int, object]]:
    """(segment stem, line number, decoded line) of every complete line of ``segments``."""
    decoder = msgspec.json.Decoder(struct)
    for segment in segments:
        lines = read_complete_lines(segment.location).splitlines()
        for number, line in enumerate(lines, start=1):
            try:
                yield segment.stem, number, decoder.decode(line)
            except msgspec.DecodeError as error:
                raise ValueError(f"{segment.location} line {number}: {error}") from None


def _bronze_frame(
    day: dt.date, instrument: str, rows: Iterator[tuple[str, int, object]], fields: tuple[str, ...]
) -> pl.DataFrame:
    columns: dict[str, list] = {name: [] for name in (*fields, "bids", "asks")}
    files: list[str] = []
    numbers: list[int] = []
    for stem, number, line in rows:
        for name in fields:
            columns[name].append(getattr(line, name))
        columns["bids"].append(bytes(line.bids).decode())  # type: ignore[attr-defined]
        columns["asks"].append(bytes(line.asks).decode())  # type: ignore[attr-defined]
        files.append(stem)
        numbers.append(number)
    return pl.DataFrame(
        {
            **columns,
            "source_file": pl.Series(files, dtype=pl.String),
            "line_no": pl.Series(numbers, dtype=pl.Int64),
        },
        schema_overrides={n: pl.String if n in ("kind", "gap") else pl.Int64 for n in fields},
    ).with_columns(
        trade_date=pl.lit(day),
        instrument=pl.lit(instrument),
        ingested_at=pl.lit(dt.datetime.now(dt.UTC)).dt.cast_time_unit("us"),
    )


def _replace(lake: Lakehouse, table_def, day: dt.date, instrument: str, frame: pl.DataFrame,
             time_column: str) -> PartitionWrite:  # fmt: skip
    table = lake.table(table_def)
    replace_partition(table, day, instrument, [to_iceberg_arrow(frame, table.schema())])
    events = (None, None)
    if not frame.is_empty():
        column = pl.col(time_column)
        first, last = frame.select(column.min().alias("first"), column.max().alias("last")).row(0)
        events = (_utc(first), _utc(last))
    return partition_write(table, day, instrument, events)


def _utc(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC)


def load_bronze_book(
    lake: Lakehouse, instrument: str, day: dt.date, landing_root: Path | str
) -> BookBronzeResult:
    """bronze.book_updates and bronze.book_snapshots of the day: every sealed landed line."""
    updates = _segments(landing_root, BOOK_UPDATES_KIND, instrument, day)
    snapshots = _segments(landing_root, BOOK_SNAPSHOTS_KIND, instrument, day)
    diff_fields = ("segment", "first_update_id", "final_update_id", "event_ns", "receive_ns")
    snapshot_fields = ("segment", "kind", "last_update_id", "taken_ns", "gap", "lost_ns")
    diffs = _bronze_frame(day, instrument, _rows(updates, _LandedDiff), diff_fields)
    whole = _bronze_frame(day, instrument, _rows(snapshots, _LandedSnapshot), snapshot_fields)
    stems = [s.stem for s in (*updates, *snapshots)]
    return BookBronzeResult(
        _replace(lake, BRONZE_BOOK_UPDATES_TABLE, day, instrument, diffs, "receive_ns"),
        _replace(lake, BRONZE_BOOK_SNAPSHOTS_TABLE, day, instrument, whole, "taken_ns"),
        landed_segments=len(stems),
        last_segment=max(stems, default=None),
    )


_LEVELS = msgspec.json.Decoder(list[tuple[str, str]])


def _integer_levels(frame: pl.DataFrame) -> pl.DataFrame:
    """The ``bids`` and ``asks`` JSON texts as the four integer list columns."""
    columns: dict[str, list[list[int]]] = {name: [] for name in LEVEL_COLUMNS}
    for bids, asks in frame.select("bids", "asks").iter_rows():
        for side, text in (("bid", bids), ("ask", asks)):
            levels = _LEVELS.decode(text)
            columns[f"{side}_prices"].append(units_of([p for p, _ in levels]))
            columns[f"{side}_qtys"].append(units_of([q for _, q in levels]))
    lists = {name: pl.Series(name, values, dtype=pl.List(pl.Int64))
             for name, values in columns.items()}  # fmt: skip
    return frame.drop("bids", "asks").with_columns(**lists)


def refine_silver_book(lake: Lakehouse, instrument: str, day: dt.date) -> BookSilverResult:
    """silver.book_updates and silver.book_snapshots of the day, from bronze."""
    repeated = 0
    writes = []
    for bronze, silver, keys, order, time_column in (
        (BRONZE_BOOK_UPDATES_TABLE, SILVER_BOOK_UPDATES_TABLE, UPDATE_KEYS, UPDATE_KEYS,
         "receive_ns"),
        (BRONZE_BOOK_SNAPSHOTS_TABLE, SILVER_BOOK_SNAPSHOTS_TABLE, SNAPSHOT_KEYS,
         ("segment", "taken_ns"), "taken_ns"),
    ):  # fmt: skip
        frame = read_partition(lake.table(bronze), day, instrument)
        unique = frame.unique(subset=list(keys), keep="first", maintain_order=True)
        repeated += frame.height - unique.height
        typed = _integer_levels(unique.sort(list(order)))
        writes.append(_replace(lake, silver, day, instrument, typed, time_column))
    return BookSilverResult(writes[0], writes[1], repeated)


def read_silver_book(
    lake: Lakehouse, instrument: str, day: dt.date
) -> tuple[list[LevelDiff], list[LevelSnapshot]]:
    """The day's silver diffs and snapshots, as the rebuild takes them."""
    diffs = read_partition(lake.table(SILVER_BOOK_UPDATES_TABLE), day, instrument)
    snapshots = read_partition(lake.table(SILVER_BOOK_SNAPSHOTS_TABLE), day, instrument)
    diff_columns = ("segment", "first_update_id", "final_update_id", "receive_ns", *LEVEL_COLUMNS)
    snapshot_columns = ("segment", "kind", "last_update_id", "taken_ns", *LEVEL_COLUMNS, "lost_ns")
    return (
        [LevelDiff(*row) for row in diffs.select(diff_columns).iter_rows()],
        [LevelSnapshot(*row) for row in snapshots.select(snapshot_columns).iter_rows()],
    )


def check_silver_book(lake: Lakehouse, instrument: str, day: dt.date) -> RebuildReport:
    """Rebuild the day's book from silver and hold it to its snapshots (see ``rebuild``)."""
    return rebuild(*read_silver_book(lake, instrument, day))
