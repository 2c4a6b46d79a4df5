"""Landed trades as bronze: the streaming sidecar's durable record of live ticks, read back.

Where segments live and how a reader finds their whole records is in
:mod:`trading_assets.lib.lakehouse.landing_layout` (re-exported here).

Every reader takes the landing root as a location: the landing folder, or in production the
``s3://`` prefix sealed segments are shipped to (:mod:`streaming.landing.shipper`).

Live data and the daily bulk file describe the same (day, symbol) partition. The bulk file is
authoritative: while it is not stored, bronze is rebuilt from every sealed segment of the day
(``source = <venue>.live.trades``, ``source_file`` = the segment); once ``raw_trades`` has stored
the bulk zip, bronze is rebuilt from it and the live rows are replaced as a whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl

from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_TICKERS_KIND,
    LIVE_SOURCE,
    MODEL_ERROR_REASON,
    OPEN_SUFFIX,
    PREDICTIONS_KIND,
    SEALED_SUFFIX,
    TRADES_KIND,
    LandedSegment,
    complete_prefix_length,
    default_landing_location,
    default_landing_root,
    is_remote,
    last_complete_record,
    list_segments,
    live_source,
    partition_dir,
    read_complete_lines,
)
from trading_assets.lib.lakehouse.records import Trade
from trading_assets.lib.lakehouse.schemas import PRICE_SCALE, RAW_TRADE_COLUMNS

__all__ = [
    "BOOK_TICKERS_KIND",
    "LIVE_SOURCE",
    "MODEL_ERROR_REASON",
    "OPEN_SUFFIX",
    "PREDICTIONS_KIND",
    "SEALED_SUFFIX",
    "TRADES_KIND",
    "LandedSegment",
    "LandedTrades",
    "complete_prefix_length",
    "default_landing_location",
    "default_landing_root",
    "is_remote",
    "last_complete_record",
    "list_segments",
    "live_source",
    "newest_sealed_stems",
    "partition_dir",
    "read_complete_lines",
    "read_landed_trades",
    "read_segments",
]

# The fields of the landed Trade that bronze needs, typed as the record declares them: a field
# renamed or retyped there fails here, at import, instead of reading back as nulls.
_BRONZE_FIELDS = ("trade_id", "price", "quantity", "is_buyer_maker", "trade_ns")
_POLARS_TYPES = {int: pl.Int64, str: pl.String, bool: pl.Boolean}
_TRADE_TYPES = {field.name: field.type for field in msgspec.structs.fields(Trade)}
_TRADE_FIELDS = {name: _POLARS_TYPES[_TRADE_TYPES[name]] for name in _BRONZE_FIELDS}
_DECIMAL = pl.Decimal(38, PRICE_SCALE)
# Object-store reads in flight at once: each waits on the network, not on this process.
REMOTE_READERS = 16


@dataclass(frozen=True)
class LandedTrades:
    """A day × instrument of landed trades as bronze rows, with the segments they came from."""

    bronze: pl.DataFrame
    segments: tuple[LandedSegment, ...]

    @property
    def last_segment(self) -> str | None:
        """Stem of the newest segment read (the live ingestion's progress marker)."""
        return self.segments[-1].stem if self.segments else None


def read_landed_trades(
    root: Path | str, instrument: str, day: dt.date, ingested_at: dt.datetime
) -> LandedTrades:
    """Every sealed trade segment of the day as bronze rows (strings, as in the bulk CSV).

    ``id``/``price``/``qty``/``is_buyer_maker`` are the landed values; ``time`` is the trade
    time in µs (silver reads ms and µs alike); ``quote_qty`` is price × qty rounded to 8
    decimals (the WebSocket sends none; exact for every pair whose tick × step fits 8 decimals);
    ``is_best_match`` is null (the stream's flag is not kept). ``line_no`` numbers the rows
    across the day's segments in write order; ``source_file`` names each row's segment.
    """
    segments = tuple(list_segments(root, TRADES_KIND, instrument=instrument, day=day))
    frames = [
        _segment_frame(lines, segment.relative_to(root))
        for segment, lines in zip(segments, read_segments(segments), strict=True)
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
        pl.lit(instrument, dtype=pl.String).alias("instrument"),
        pl.col("line_no").cast(pl.Int64),
        *RAW_TRADE_COLUMNS,
        pl.lit(live_source(instrument), dtype=pl.String).alias("source"),
        pl.col("source_file"),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )
    return LandedTrades(bronze=bronze, segments=segments)


def read_segments(
    segments: Sequence[LandedSegment], read: Callable[[str], bytes] = read_complete_lines
) -> list[bytes]:
    """Each segment's complete lines (``read`` of its location), in order. Segments in an object
    store are fetched concurrently: a day holds thousands, and one request at a time would take
    the pickup seconds."""
    locations = [segment.location for segment in segments]
    if len(locations) < 2 or not is_remote(locations[0]):
        return [read(location) for location in locations]
    with ThreadPoolExecutor(min(REMOTE_READERS, len(locations))) as pool:
        return list(pool.map(read, locations))


def _segment_frame(lines: bytes, source_file: str) -> pl.DataFrame:
    if not lines:
        return pl.DataFrame(schema={**_TRADE_FIELDS, "source_file": pl.String})
    frame = pl.read_ndjson(lines, schema=_TRADE_FIELDS)
    return frame.with_columns(pl.lit(source_file, dtype=pl.String).alias("source_file"))


def newest_sealed_stems(
    root: Path | str, kinds: tuple[str, ...] = (TRADES_KIND,)
) -> dict[tuple[dt.date, str], str]:
    """The newest sealed segment's stem of ``kinds`` (the trades') per (day, instrument): what
    a pickup has to cover."""
    newest: dict[tuple[dt.date, str], str] = {}
    for kind in kinds:
        for segment in list_segments(root, kind):
            key = (segment.day, segment.instrument)
            newest[key] = max(newest.get(key, ""), segment.stem)
    return newest
