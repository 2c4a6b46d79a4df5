"""Landing files: the streaming sidecar's durable record of live ticks, and their bronze view.

Layout (shared by the writer in ``streaming.landing`` and the readers here)::

    <root>/<kind>/<SYMBOL>/<YYYY-MM-DD>/<stem>.jsonl.open   being written by a live process
    <root>/<kind>/<SYMBOL>/<YYYY-MM-DD>/<stem>.jsonl        sealed: complete, fsynced, never changes

Each line is one JSON object (a msgspec record with its own field names) ended by ``\\n``. A torn
write can only damage the last line of an ``.open`` segment, so readers keep the prefix of
complete lines. Stems start with a zero-padded creation time, so name order is write order.

Live data and the daily bulk file describe the same (day, symbol) partition. The bulk file is
authoritative: while it is not stored, bronze is rebuilt from every sealed segment of the day
(``source = binance.live.trades``, ``source_file`` = the segment); once ``raw_trades`` has stored
the bulk zip, bronze is rebuilt from it and the live rows are replaced as a whole.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl

from trading_assets.lib.lakehouse.schemas import PRICE_SCALE, RAW_TRADE_COLUMNS
from trading_assets.lib.settings import data_dir

TRADES_KIND = "trades"
BOOK_TICKERS_KIND = "book_tickers"
PREDICTIONS_KIND = "predictions"
MODEL_ERROR_REASON = "model error"
"""How a landed prediction's ``reason`` starts when its model failed to score (no trade)."""

SEALED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"
SOURCE_LIVE = "binance.live.trades"
"""bronze ``source`` of rows built from landed trades (WebSocket ticks and their REST gap-fills)."""

# Fields of streaming.venues.binance.records.Trade that bronze needs, as landed.
_TRADE_FIELDS = {
    "trade_id": pl.Int64,
    "price": pl.String,
    "quantity": pl.String,
    "is_buyer_maker": pl.Boolean,
    "trade_ns": pl.Int64,
}
_DECIMAL = pl.Decimal(38, PRICE_SCALE)


def default_landing_root() -> Path:
    """``TRADING_LANDING_DIR``, else ``<data dir>/landing`` (shared by the sidecar and Dagster)."""
    configured = os.environ.get("TRADING_LANDING_DIR", "").strip()
    return Path(configured) if configured else data_dir() / "landing"


def partition_dir(root: Path, kind: str, symbol: str, day: dt.date) -> Path:
    """Folder holding the segments of one kind × symbol × UTC day."""
    return Path(root) / kind / symbol.upper() / day.isoformat()


@dataclass(frozen=True)
class LandedSegment:
    """One segment file, located by its place in the layout."""

    path: Path
    kind: str
    symbol: str
    day: dt.date
    sealed: bool

    @property
    def stem(self) -> str:
        """The segment's name without suffix; stems sort in write order."""
        suffix = SEALED_SUFFIX if self.sealed else OPEN_SUFFIX
        return self.path.name.removesuffix(suffix)

    def relative_to(self, root: Path) -> str:
        """Path below the landing root, as kept in bronze's ``source_file``."""
        return self.path.relative_to(root).as_posix()


def list_segments(
    root: Path,
    kind: str,
    *,
    symbol: str | None = None,
    day: dt.date | None = None,
    include_open: bool = False,
) -> list[LandedSegment]:
    """Segments of ``kind`` (optionally one symbol and/or day), ordered by symbol, day and stem."""
    kind_dir = Path(root) / kind
    if not kind_dir.is_dir():
        return []
    found: list[LandedSegment] = []
    symbol_dirs = [kind_dir / symbol.upper()] if symbol else sorted(kind_dir.iterdir())
    for symbol_dir in symbol_dirs:
        if not symbol_dir.is_dir():
            continue
        day_dirs = [symbol_dir / day.isoformat()] if day else sorted(symbol_dir.iterdir())
        for day_dir in day_dirs:
            segment_day = _parse_day(day_dir.name)
            if segment_day is None or not day_dir.is_dir():
                continue
            for path in sorted(day_dir.iterdir()):
                sealed = path.name.endswith(SEALED_SUFFIX)
                if sealed or (include_open and path.name.endswith(OPEN_SUFFIX)):
                    found.append(LandedSegment(path, kind, symbol_dir.name, segment_day, sealed))
    return found


def _parse_day(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def complete_prefix_length(data: bytes) -> int:
    """Length of the longest prefix of ``data`` made of whole, well-formed JSON lines.

    Only the tail is inspected: everything before the last good line was fsynced before later
    writes began, while a crash (or a filesystem that extends a file before its data reaches the
    disk) may leave a partial line, or zero bytes, at the end.
    """
    end = data.rfind(b"\n") + 1
    while end > 0:
        start = data.rfind(b"\n", 0, end - 1) + 1
        try:
            msgspec.json.decode(data[start : end - 1])
        except msgspec.DecodeError:
            end = start
            continue
        return end
    return 0


def read_complete_lines(path: Path) -> bytes:
    """A segment's bytes up to its last complete record (all of it for a sealed segment)."""
    data = path.read_bytes()
    return data[: complete_prefix_length(data)]


def last_complete_record(path: Path, tail_bytes: int = 1 << 16) -> bytes | None:
    """The last complete JSON line of a segment, reading only its tail when that suffices."""
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        window = min(size, tail_bytes)
        while True:
            stream.seek(size - window)
            data = stream.read(window)
            end = complete_prefix_length(data)
            start = data.rfind(b"\n", 0, max(end - 1, 0)) + 1
            # A line starting at the window's edge may be cut off: widen the window to be sure.
            if end and (start > 0 or window == size):
                return data[start : end - 1]
            if window == size:
                return None
            window = min(size, window * 4)


@dataclass(frozen=True)
class LandedTrades:
    """A day × symbol of landed trades as bronze rows, with the segments they came from."""

    bronze: pl.DataFrame
    segments: tuple[LandedSegment, ...]

    @property
    def last_segment(self) -> str | None:
        """Stem of the newest segment read (the live ingestion's progress marker)."""
        return self.segments[-1].stem if self.segments else None


def read_landed_trades(
    root: Path, symbol: str, day: dt.date, ingested_at: dt.datetime
) -> LandedTrades:
    """Every sealed trade segment of the day as bronze rows (strings, as in the bulk CSV).

    ``id``/``price``/``qty``/``is_buyer_maker`` are the landed values; ``time`` is the trade
    time in µs (silver reads ms and µs alike); ``quote_qty`` is price × qty rounded to 8
    decimals (the WebSocket sends none; exact for every pair whose tick × step fits 8 decimals);
    ``is_best_match`` is null (the stream's flag is not kept). ``line_no`` numbers the rows
    across the day's segments in write order; ``source_file`` names each row's segment.
    """
    segments = tuple(list_segments(root, TRADES_KIND, symbol=symbol, day=day))
    frames = [
        _segment_frame(read_complete_lines(segment.path), segment.relative_to(root))
        for segment in segments
    ]
    landed = (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={**_TRADE_FIELDS, "source_file": pl.String})
    )
    raw_columns = landed.select(
        pl.col("trade_id").cast(pl.String).alias("id"),
        pl.col("price"),
        pl.col("quantity").alias("qty"),
        (
            pl.col("price").cast(_DECIMAL, strict=False)
            * pl.col("quantity").cast(_DECIMAL, strict=False)
        )
        .cast(pl.String)
        .alias("quote_qty"),
        (pl.col("trade_ns") // 1_000).cast(pl.String).alias("time"),
        pl.when(pl.col("is_buyer_maker"))
        .then(pl.lit("True"))
        .otherwise(pl.lit("False"))
        .alias("is_buyer_maker"),
        pl.lit(None, dtype=pl.String).alias("is_best_match"),
        pl.col("source_file"),
    )
    bronze = raw_columns.with_row_index("line_no", offset=1).select(
        pl.lit(day, dtype=pl.Date).alias("trade_date"),
        pl.lit(symbol.upper(), dtype=pl.String).alias("symbol"),
        pl.col("line_no").cast(pl.Int64),
        *RAW_TRADE_COLUMNS,
        pl.lit(SOURCE_LIVE, dtype=pl.String).alias("source"),
        pl.col("source_file"),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )
    return LandedTrades(bronze=bronze, segments=segments)


def _segment_frame(lines: bytes, source_file: str) -> pl.DataFrame:
    if not lines:
        return pl.DataFrame(schema={**_TRADE_FIELDS, "source_file": pl.String})
    frame = pl.read_ndjson(lines, schema=_TRADE_FIELDS)
    return frame.with_columns(pl.lit(source_file, dtype=pl.String).alias("source_file"))


def newest_sealed_stems(root: Path) -> dict[tuple[dt.date, str], str]:
    """The newest sealed trade segment's stem per (day, symbol): what a pickup has to cover."""
    newest: dict[tuple[dt.date, str], str] = {}
    for segment in list_segments(root, TRADES_KIND):
        key = (segment.day, segment.symbol)
        newest[key] = max(newest.get(key, ""), segment.stem)
    return newest
