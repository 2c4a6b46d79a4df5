"""Bronze: the bulk CSV rows exactly as received (all strings), plus their origin and arrival.

Every line of the CSV member but a header is a bronze row, numbered ``line_no`` by its 1-based
line in the member (a header is line 1), so a quarantined row or an error points at the line to
look at. One rule for a malformed line, whatever is wrong with it: it is kept, never a reason to
refuse the file. A line with fewer than seven fields has the missing ones null; one with more
keeps the extra ones in ``is_best_match``, joined by commas, so the seven columns joined by commas
give the line back. Silver quarantines both with their reason (:func:`field_count_flags`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from trading_assets.lib.lakehouse.bulk_checks import (
    FIELDS_PER_ROW,
    has_header,
)
from trading_assets.lib.lakehouse.schemas import RAW_TRADE_COLUMNS

SOURCE_BULK = "binance.bulk.daily_trades"
TOO_FEW_FIELDS = "too_few_fields"
TOO_MANY_FIELDS = "too_many_fields"

__all__ = [
    "SOURCE_BULK",
    "TOO_FEW_FIELDS",
    "TOO_MANY_FIELDS",
    "count_csv_rows",
    "field_count_flags",
    "has_header",
    "parse_bronze",
    "read_raw_times",
]


def count_csv_rows(csv_bytes: bytes) -> int:
    """Data rows in the CSV: lines (a final line may lack its newline) minus a header."""
    if not csv_bytes:
        return 0
    lines = csv_bytes.count(b"\n") + (0 if csv_bytes.endswith(b"\n") else 1)
    return lines - (1 if has_header(csv_bytes) else 0)


def read_raw_times(csv_bytes: bytes) -> pl.DataFrame:
    """Only the CSV's ``time`` column, as strings (as bronze keeps it): a cheap event-time scan."""
    if not csv_bytes:
        return pl.DataFrame(schema={"time": pl.String})
    return pl.read_csv(
        csv_bytes,
        has_header=False,
        skip_rows=1 if has_header(csv_bytes) else 0,
        schema=dict.fromkeys(RAW_TRADE_COLUMNS, pl.String),
        columns=[RAW_TRADE_COLUMNS.index("time")],
        quote_char=None,
        # A malformed line is bronze's and silver's to reject, not a reason to fail this scan.
        truncate_ragged_lines=True,
    )


def parse_bronze(
    csv_bytes: bytes,
    day: dt.date,
    symbol: str,
    source_file: str,
    ingested_at: dt.datetime,
    source: str = SOURCE_BULK,
) -> pl.DataFrame:
    """CSV rows as strings, each with its line number, plus partition and ingestion columns."""
    columns = list(RAW_TRADE_COLUMNS)
    return _csv_rows(csv_bytes).select(
        pl.lit(day, dtype=pl.Date).alias("trade_date"),
        pl.lit(symbol, dtype=pl.String).alias("instrument"),
        pl.col("line_no").cast(pl.Int64),
        *columns,
        pl.lit(source, dtype=pl.String).alias("source"),
        pl.lit(source_file, dtype=pl.String).alias("source_file"),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )


def _csv_rows(csv_bytes: bytes) -> pl.DataFrame:
    """``line_no`` plus the seven raw columns of every data line.

    polars' CSV reader takes a well-formed file (nearly every day) at full speed; a file with a
    short, long or blank line, or bytes that are not UTF-8, is split line by line instead.
    """
    columns = list(RAW_TRADE_COLUMNS)
    if not csv_bytes:
        return pl.DataFrame(schema={"line_no": pl.Int64, **dict.fromkeys(columns, pl.String)})
    header = has_header(csv_bytes)
    try:
        frame = pl.read_csv(
            csv_bytes,
            has_header=False,
            skip_rows=1 if header else 0,
            new_columns=columns,
            schema=dict.fromkeys(columns, pl.String),
            quote_char=None,
            empty_string_is_null=False,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError:  # a line with too many fields, or bytes not UTF-8
        return _split_lines(csv_bytes, header)
    # The reader pads a short line with empty strings (its last field is always one of them),
    # and may skip a blank line; a line too long raised above. Either way, split line by line.
    last = frame.get_column(RAW_TRADE_COLUMNS[-1])
    if frame.height != count_csv_rows(csv_bytes) or (last == "").any():
        return _split_lines(csv_bytes, header)
    return frame.with_row_index("line_no", offset=2 if header else 1)


def _split_lines(csv_bytes: bytes, header: bool) -> pl.DataFrame:
    """The exact reading: every line cut at its first six commas, whatever its field count (a
    short line leaves the later columns null, a long one keeps the rest in the last)."""
    text = csv_bytes.decode("utf-8", errors="replace")
    lines = pl.Series("line", [text]).str.split("\n").explode()
    frame = pl.DataFrame({"line": lines}).with_row_index("line_no", offset=1)
    if text.endswith("\n"):
        frame = frame.head(-1)  # the newline ending the last line starts no line
    if header:
        frame = frame.slice(1)
    fields = pl.col("line").str.strip_suffix("\r").str.splitn(",", FIELDS_PER_ROW)
    return frame.select(
        "line_no", fields.struct.rename_fields(list(RAW_TRADE_COLUMNS)).alias("fields")
    ).unnest("fields")


def field_count_flags() -> dict[str, pl.Expr]:
    """Reason → flag of a bulk row whose line had fewer or more than seven fields.

    Read back from how bronze keeps such a line (see the module docstring). Only bulk rows are
    judged: a landed live row has no ``is_best_match`` by design, not a missing field.
    """
    bulk = pl.col("source") == SOURCE_BULK
    missing = pl.any_horizontal(pl.col(name).is_null() for name in RAW_TRADE_COLUMNS)
    extra = pl.col(RAW_TRADE_COLUMNS[-1]).str.contains(",", literal=True)
    return {
        TOO_FEW_FIELDS: (bulk & missing).fill_null(False),
        TOO_MANY_FIELDS: (bulk & extra).fill_null(False),
    }
