"""The lakehouse stages, one function per Dagster asset: raw → bronze → silver → bars.

Each stage reads its input partition from the previous table (or the stored raw zip), transforms
it with polars and replaces its own (day, symbol) partition in one Iceberg commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.io import FileIO, load_file_io
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from trading_assets.lib.lakehouse import bars as bar_math
from trading_assets.lib.lakehouse.bronze import (
    SOURCE_BULK,
)
from trading_assets.lib.lakehouse.bulk import (
    NoBulkFilesError,
    ProgressCallback,
    RawFile,
    bulk_symbol,
    download_daily_trades,
    raw_uri_of,
    require_marked_empty,
    verify_stored,
)
from trading_assets.lib.lakehouse.bulk_checks import expected_member
from trading_assets.lib.lakehouse.bulk_replacement import IncomingTrades, check_replacement
from trading_assets.lib.lakehouse.chunks import (
    CHUNK_ROWS,
    bronze_chunks,
    count_csv_rows_streamed,
    csv_chunks,
    open_csv_member,
    raw_times,
    shape_checked,
)
from trading_assets.lib.lakehouse.landing import live_source, read_landed_trades
from trading_assets.lib.lakehouse.quality import Reconciliation
from trading_assets.lib.lakehouse.schemas import (
    BARS_1M_TABLE,
    BARS_1S_TABLE,
    BRONZE_TRADES_TABLE,
    QUARANTINE_TABLE,
    SILVER_TRADES_TABLE,
    TableDef,
)
from trading_assets.lib.lakehouse.silver import SilverRefiner, epoch_to_microseconds
from trading_assets.lib.lakehouse.tables import (
    PartitionWriter,
    count_partition,
    ensure_table,
    partition_filter,
    read_partition,
    read_partition_chunks,
    replace_partition,
)


@dataclass
class Lakehouse:
    """A catalog plus the raw area (``<warehouse>/raw``) where original bulk files are kept."""

    catalog: Catalog
    raw_root: str
    chunk_rows: int = CHUNK_ROWS
    """Rows a stage holds at once: bronze, silver and the 1 s bars work through a day in chunks
    of this many trades, so a run's memory does not grow with a busy day."""
    _tables: dict[str, Table] = field(default_factory=dict, repr=False)

    @cached_property
    def io(self) -> FileIO:
        return load_file_io(dict(self.catalog.properties), self.raw_root)

    def table(self, table: TableDef) -> Table:
        if table.identifier not in self._tables:
            self._tables[table.identifier] = ensure_table(self.catalog, table)
        return self._tables[table.identifier]


@dataclass(frozen=True)
class PartitionWrite:
    """What one stage left in its table partition after the commit."""

    table: str
    rows: int
    data_bytes: int
    data_files: int
    first_event: dt.datetime | None = None
    last_event: dt.datetime | None = None


@dataclass(frozen=True)
class BronzeResult:
    """bronze's partition after the write, and where its rows came from."""

    write: PartitionWrite
    raw_sha256: str | None  # the bulk zip's; None when built from landed live segments
    source: str = SOURCE_BULK
    landed_segments: int = 0
    last_segment: str | None = None


@dataclass(frozen=True)
class SilverResult:
    silver: PartitionWrite
    quarantine: PartitionWrite
    reasons: dict[str, int]


@dataclass(frozen=True)
class BarsResult:
    write: PartitionWrite
    bars: pl.DataFrame


def to_iceberg_arrow(frame: pl.DataFrame, schema: Schema) -> pa.Table:
    """Polars frame → Arrow table with the Iceberg schema's columns, types and nullability.

    Strings stay Arrow string views (polars' own layout, handed over without a copy); the
    Parquet writer takes them as they are, where converting to large strings would copy every
    byte of a bronze partition.
    """
    target = pa.schema(
        [
            field.with_type(pa.string_view()) if pa.types.is_large_string(field.type) else field
            for field in schema.as_arrow()
        ]
    )
    data = frame.select(target.names).to_arrow(compat_level=pl.CompatLevel.newest())
    return data.cast(target)


EventRange = tuple[dt.datetime | None, dt.datetime | None]


def event_range(frame: pl.DataFrame, event: pl.Expr) -> EventRange:
    """(earliest, latest) of an event-time expression (µs since the epoch or a UTC datetime)."""
    if frame.is_empty():
        return None, None
    as_time = event.cast(pl.Datetime("us", "UTC"))
    first, last = frame.select(as_time.min(), as_time.max().alias("last")).row(0)
    return first, last


def widen_range(span: EventRange, other: EventRange) -> EventRange:
    """The range covering both (a day's range from its chunks' ranges)."""
    firsts = [time for time in (span[0], other[0]) if time is not None]
    lasts = [time for time in (span[1], other[1]) if time is not None]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def partition_write(
    table: Table,
    day: dt.date,
    symbol: str,
    events: EventRange = (None, None),
) -> PartitionWrite:
    files = [task.file for task in table.refresh().scan(partition_filter(day, symbol)).plan_files()]
    first, last = events
    return PartitionWrite(
        table=".".join(table.name()[-2:]),
        rows=sum(f.record_count for f in files),
        data_bytes=sum(f.file_size_in_bytes for f in files),
        data_files=len(files),
        first_event=first,
        last_event=last,
    )


def fetch_raw(
    lake: Lakehouse,
    base_url: str,
    symbol: str,
    day: dt.date,
    on_progress: ProgressCallback | None = None,
) -> RawFile:
    """raw_trades: download the day's zip, verify its sha256, keep it under ``<warehouse>/raw``
    (NoBulkFilesError for an instrument whose venue publishes none)."""
    venue_symbol = bulk_symbol(symbol)
    if venue_symbol is None:
        raise NoBulkFilesError(f"{symbol}: its venue publishes no daily trade files")
    return download_daily_trades(base_url, venue_symbol, day, lake.raw_root, lake.io, on_progress)


def raw_event_range(lake: Lakehouse, raw_uri: str) -> EventRange:
    """(earliest, latest) trade time in a stored raw zip's rows, unvalidated (as bronze reports),
    read ``lake.chunk_rows`` lines at a time, never the whole CSV."""
    events: EventRange = (None, None)
    with open_csv_member(lake.io, raw_uri) as (_, blocks):
        for chunk in csv_chunks(blocks, lake.chunk_rows):
            events = widen_range(events, event_range(raw_times(chunk), _raw_time_us()))
    return events


def _raw_time_us() -> pl.Expr:
    return epoch_to_microseconds(pl.col("time").str.to_integer(strict=False))


def load_bronze(
    lake: Lakehouse,
    symbol: str,
    day: dt.date,
    landing_root: str | Path | None = None,
    *,
    replace_missing_trades: bool = False,
) -> BronzeResult:
    """bronze_trades: the stored raw zip's rows as strings plus ingestion columns.

    The bulk zip is authoritative. Only when it is not stored (yet) and ``landing_root`` is
    given, the partition is rebuilt from the day's sealed live segments instead (see
    :mod:`trading_assets.lib.lakehouse.landing`); the bulk file replaces those rows once stored,
    unless it lacks trades they hold (:mod:`~trading_assets.lib.lakehouse.bulk_replacement`;
    ``replace_missing_trades`` overrides that). A zip without rows needs the venue's ``.EMPTY``
    marker (:mod:`~trading_assets.lib.lakehouse.bulk_checks`).
    """
    raw_uri = raw_uri_of(lake.raw_root, symbol, day)
    if landing_root is not None and (raw_uri is None or not lake.io.new_input(raw_uri).exists()):
        return _load_bronze_from_landing(lake, symbol, day, landing_root)
    if raw_uri is None:
        raise NoBulkFilesError(f"{symbol}: no daily files, and no landing location to read")
    sha256 = verify_stored(lake.io, raw_uri)
    # Parsed and written a chunk at a time; the checks see every chunk before the commit.
    incoming = IncomingTrades(day)
    staged = stage_bulk_bronze(lake, symbol, day, raw_uri, on_chunk=incoming.add)
    if staged.rows == 0:
        require_marked_empty(lake.io, raw_uri, sha256)
    check_replacement(
        lake.table(BRONZE_TRADES_TABLE), day, symbol, incoming, raw_uri,
        replace_missing_trades=replace_missing_trades,
    )  # fmt: skip
    return BronzeResult(staged.commit(), sha256)


def _load_bronze_from_landing(
    lake: Lakehouse, symbol: str, day: dt.date, landing_root: str | Path
) -> BronzeResult:
    landed = read_landed_trades(landing_root, symbol, day, _now())
    if not landed.segments:
        raise FileNotFoundError(
            f"{symbol} {day}: no bulk file stored and no sealed landed trades under {landing_root}"
        )
    table = lake.table(BRONZE_TRADES_TABLE)
    replace_partition(table, day, symbol, [to_iceberg_arrow(landed.bronze, table.schema())])
    events = event_range(landed.bronze, _raw_time_us())
    return BronzeResult(
        partition_write(table, day, symbol, events),
        raw_sha256=None,
        source=live_source(symbol),
        landed_segments=len(landed.segments),
        last_segment=landed.last_segment,
    )


@dataclass(frozen=True)
class StagedBronze:
    """A bulk day's bronze rows written as data files, not committed yet: the caller checks
    what they hold, then commits, or drops them and the partition stays as it was."""

    writer: PartitionWriter
    events: EventRange

    @property
    def rows(self) -> int:
        return self.writer.rows

    def commit(self) -> PartitionWrite:
        """Replace the partition with the staged rows in one commit."""
        self.writer.commit()
        writer = self.writer
        return partition_write(writer.table, writer.day, writer.symbol, self.events)


def stage_bulk_bronze(
    lake: Lakehouse,
    symbol: str,
    day: dt.date,
    raw_uri: str,
    on_chunk: Callable[[pl.DataFrame], None] | None = None,
) -> StagedBronze:
    """The stored zip's bronze rows, parsed and written ``lake.chunk_rows`` lines at a time as
    its CSV inflates, so neither the CSV nor its rows are ever held whole; ``on_chunk`` sees
    each chunk's rows (to gather what a check before the commit needs). The zip must hold the
    CSV named after it, and its first rows must be shaped like trade rows."""
    table = lake.table(BRONZE_TRADES_TABLE)
    writer = PartitionWriter(table, day, symbol)
    events: EventRange = (None, None)
    ingested_at = _now()
    zip_name = raw_uri.rsplit("/", 1)[-1]
    with open_csv_member(lake.io, raw_uri, expected_member(zip_name)) as (member, blocks):
        blocks = shape_checked(blocks, member, raw_uri)
        source_file = member.removesuffix(".csv") + ".zip"
        for frame in bronze_chunks(blocks, day, symbol, source_file, ingested_at, lake.chunk_rows):
            if on_chunk is not None:
                on_chunk(frame)
            writer.write(to_iceberg_arrow(frame, table.schema()))
            events = widen_range(events, event_range(frame, _raw_time_us()))
    return StagedBronze(writer, events)


def refine_silver(lake: Lakehouse, symbol: str, day: dt.date) -> SilverResult:
    """silver_trades + quarantine: typed, validated, deduplicated; rejects kept with a reason.

    Bronze is read in line order, ``lake.chunk_rows`` rows at a time, and each chunk's silver
    and quarantine rows are written as they come; both partitions are committed at the end.
    """
    silver_table = lake.table(SILVER_TRADES_TABLE)
    quarantine_table = lake.table(QUARANTINE_TABLE)
    silver_out = PartitionWriter(silver_table, day, symbol)
    quarantine_out = PartitionWriter(quarantine_table, day, symbol)
    refiner = SilverRefiner(day)
    events: EventRange = (None, None)
    bronze_in_line_order = read_partition_chunks(
        lake.table(BRONZE_TRADES_TABLE), day, symbol, "line_no", lake.chunk_rows
    )
    for bronze in bronze_in_line_order:
        split = refiner.split(bronze)
        del bronze
        quarantine_out.write(to_iceberg_arrow(split.quarantine, quarantine_table.schema()))
        silver_out.write(to_iceberg_arrow(split.silver, silver_table.schema()))
        events = widen_range(events, event_range(split.silver, pl.col("event_time")))
    # Quarantine first: if the silver commit then fails, reconciliation flags the partition
    # instead of silently showing fewer rows.
    quarantine_out.commit()
    silver_out.commit()
    return SilverResult(
        silver=partition_write(silver_table, day, symbol, events),
        quarantine=partition_write(quarantine_table, day, symbol),
        reasons=refiner.reasons,
    )


def read_silver(
    lake: Lakehouse,
    symbol: str,
    day: dt.date,
    columns: tuple[str, ...] | None = None,
    where: pl.Expr | None = None,
) -> pl.DataFrame:
    return read_partition(lake.table(SILVER_TRADES_TABLE), day, symbol, columns, where)


def build_bars_1s(lake: Lakehouse, symbol: str, day: dt.date) -> BarsResult:
    """bars_1s: OHLCV, VWAP and taker buy/sell volume per second with trades.

    Silver is read ``lake.chunk_rows`` trades at a time in whole seconds, so every bar is
    computed from all its trades at once and equals the bar of the whole day's computation.
    """
    trades = read_partition_chunks(
        lake.table(SILVER_TRADES_TABLE),
        day,
        symbol,
        "event_time",
        lake.chunk_rows,
        bar_math.SILVER_BAR_COLUMNS,
        align="1s",
    )
    parts = [bar_math.bars_from_trades(chunk, "1s") for chunk in trades]
    if not parts:
        parts = [
            bar_math.bars_from_trades(read_silver(lake, symbol, day, bar_math.SILVER_BAR_COLUMNS))
        ]
    bars = pl.concat(parts).sort("bar_start")
    return _write_bars(lake, BARS_1S_TABLE, symbol, day, bars)


def build_bars_1m(lake: Lakehouse, symbol: str, day: dt.date) -> BarsResult:
    """bars_1m: rolled up from bars_1s (sums add up, so VWAP is the same as from trades)."""
    seconds = read_partition(lake.table(BARS_1S_TABLE), day, symbol)
    bars = bar_math.rollup_bars(seconds, "1m")
    return _write_bars(lake, BARS_1M_TABLE, symbol, day, bars)


def _write_bars(
    lake: Lakehouse, table_def: TableDef, symbol: str, day: dt.date, bars: pl.DataFrame
) -> BarsResult:
    table = lake.table(table_def)
    replace_partition(table, day, symbol, [to_iceberg_arrow(bars, table.schema())])
    events = event_range(bars, pl.col("bar_start"))
    return BarsResult(partition_write(table, day, symbol, events), bars)


def reconcile(lake: Lakehouse, symbol: str, day: dt.date) -> Reconciliation:
    """Row counts of one partition at every layer: raw = bronze = silver + quarantine.

    The raw rows are counted as the zip's CSV streams by, never held whole.
    """
    raw_uri = raw_uri_of(lake.raw_root, symbol, day)
    raw_rows: int | None = None  # a venue without daily files: bronze is what was landed
    if raw_uri is not None:
        with open_csv_member(lake.io, raw_uri) as (_, blocks):
            raw_rows = count_csv_rows_streamed(blocks)
    return Reconciliation(
        raw_rows=raw_rows,
        bronze_rows=count_partition(lake.table(BRONZE_TRADES_TABLE), day, symbol),
        silver_rows=count_partition(lake.table(SILVER_TRADES_TABLE), day, symbol),
        quarantine_rows=count_partition(lake.table(QUARANTINE_TABLE), day, symbol),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
