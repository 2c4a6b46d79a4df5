"""A stored daily zip read as a stream of CSV chunks, so a busy day never sits in memory whole.

A day's CSV is about 65 bytes a trade: half a gigabyte for the 8M trades of a busy BTCUSDT day,
and several times that once parsed. Here the member is inflated block by block (ISA-L, with the
download's size and CRC-32 checks) and cut at line ends every ``chunk_rows`` lines. Each chunk is
valid input for bronze's whole-file functions (``parse_bronze``, ``read_raw_times``,
``count_csv_rows``): a header, if the file has one, stays at the top of the first chunk, and a
later chunk whose first line bronze would take for a header (a malformed row) gets the column
header put in front, so bronze's header rule skips that and nothing else. Chunked results
therefore equal whole-file results, line numbers continued.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, cast

import polars as pl
from pyiceberg.io import FileIO

from trading_assets.lib.lakehouse.bronze import (
    SOURCE_BULK,
    has_header,
    parse_bronze,
    read_raw_times,
)
from trading_assets.lib.lakehouse.bulk_checks import (
    SHAPE_SAMPLE_BYTES,
    check_row_shape,
    member_blocks,
    open_zip_member,
)
from trading_assets.lib.lakehouse.schemas import RAW_TRADE_COLUMNS

CHUNK_ROWS = 500_000
"""Rows a lakehouse stage holds at once. At this size bronze and silver peak near 0.75 GB per
process for a 2M- or an 8M-trade day alike (1M-row chunks: about 1 GB); smaller chunks add
per-chunk work (``bench/bench_day_memory.py`` prints the seconds too)."""

HEADER_LINE = (",".join(RAW_TRADE_COLUMNS) + "\n").encode()
_FULL_WIDTH_LINE = (",".join("0" for _ in RAW_TRADE_COLUMNS) + "\n").encode()


@contextmanager
def open_csv_member(
    io: FileIO, raw_uri: str, member_name: str | None = None
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(CSV member name, its bytes as a stream of blocks) of a stored daily zip: the member
    ``member_name`` when given, else its one CSV member. The zip is checked as a download is
    (:func:`~trading_assets.lib.lakehouse.bulk_checks.open_zip_member`, ``member_blocks``):
    any damage raises ``BadBulkFileError`` naming ``raw_uri``."""
    with io.new_input(raw_uri).open(seekable=True) as stream:
        source = cast(IO[bytes], stream)
        member = open_zip_member(source, member_name, raw_uri)
        yield member.filename, member_blocks(source, member, raw_uri)


def read_csv_member(io: FileIO, raw_uri: str, member_name: str | None = None) -> tuple[str, bytes]:
    """(CSV member name, CSV bytes) of a stored daily zip, whole: for small files and tests;
    the stages read a day with :func:`open_csv_member`, a chunk at a time."""
    with open_csv_member(io, raw_uri, member_name) as (member, blocks):
        return member, b"".join(blocks)


def shape_checked(blocks: Iterator[bytes], member: str, raw_uri: str) -> Iterator[bytes]:
    """The blocks, once the member's first rows passed :func:`check_row_shape` (a stored zip may
    predate the download's checks)."""
    held: list[bytes] = []
    size = 0
    for block in blocks:
        held.append(block)
        size += len(block)
        if size >= SHAPE_SAMPLE_BYTES:
            break
    head = b"".join(held)
    # A size beyond the sample tells the check that its last line may be cut.
    whole = len(head) if size < SHAPE_SAMPLE_BYTES else len(head) + 1
    check_row_shape(head, has_header(head), size=whole, member=member, file=raw_uri)
    yield from held
    yield from blocks


def line_chunks(blocks: Iterable[bytes], lines_per_chunk: int) -> Iterator[bytes]:
    """Re-cut a byte stream into pieces of ``lines_per_chunk`` whole lines (the last piece may
    hold fewer, and lack a final newline if the stream does)."""
    if lines_per_chunk < 1:
        raise ValueError(f"lines_per_chunk must be at least 1, got {lines_per_chunk}")
    pending: list[bytes] = []
    pending_lines = 0
    for block in blocks:
        newlines = block.count(b"\n")
        start = 0
        while pending_lines + newlines >= lines_per_chunk:
            need = lines_per_chunk - pending_lines
            cut = _after_newline(block, start, need)
            pending.append(block[start:cut])
            chunk = b"".join(pending)
            pending, pending_lines = [], 0  # dropped before the chunk is used: one copy at a time
            yield chunk
            newlines -= need
            start = cut
        if start < len(block):
            pending.append(block[start:])
            pending_lines += newlines
    if pending:
        chunk = b"".join(pending)
        pending.clear()
        yield chunk


def _after_newline(block: bytes, start: int, count: int) -> int:
    """Position just after the ``count``-th newline of ``block`` from ``start``."""
    position = start - 1
    for _ in range(count):
        position = block.index(b"\n", position + 1)
    return position + 1


@dataclass(frozen=True)
class CsvChunk:
    """Whole lines of a CSV stream, as bronze's whole-file functions read them in the file."""

    data: bytes
    lines_before: int  # lines of the file before this chunk
    header_added: bool  # the column header was put in front (see csv_chunks)


def csv_chunks(blocks: Iterable[bytes], chunk_rows: int) -> Iterator[CsvChunk]:
    """Chunks of a CSV stream that bronze's whole-file functions read as they read the file.

    Only the file's first line may be a header; a later chunk starting with a line that bronze
    would take for one gets the column header in front, so that line is kept as a row.
    """
    lines_before = 0
    for index, data in enumerate(line_chunks(blocks, chunk_rows)):
        header_added = index > 0 and has_header(data)
        yield CsvChunk(HEADER_LINE + data if header_added else data, lines_before, header_added)
        lines_before += data.count(b"\n")


def bronze_chunks(
    blocks: Iterable[bytes],
    day: dt.date,
    symbol: str,
    source_file: str,
    ingested_at: dt.datetime,
    chunk_rows: int = CHUNK_ROWS,
    source: str = SOURCE_BULK,
) -> Iterator[pl.DataFrame]:
    """A CSV stream's bronze rows, ``chunk_rows`` lines at a time: the frame ``parse_bronze``
    makes of the whole CSV, cut in pieces (``line_no``, the line in the file, carries on)."""
    for chunk in csv_chunks(blocks, chunk_rows):
        frame = parse_bronze(chunk.data, day, symbol, source_file, ingested_at, source)
        # parse_bronze numbers the lines of what it is given, an added header being line 1.
        shift = chunk.lines_before - (1 if chunk.header_added else 0)
        yield frame if shift == 0 else frame.with_columns(pl.col("line_no") + shift)


def raw_times(chunk: CsvChunk) -> pl.DataFrame:
    """``read_raw_times`` of one chunk: the ``time`` strings of its rows.

    polars sizes a CSV's columns by its first line, so a chunk that opens with a short or blank
    line (a malformed row, which may fall at any chunk's start) is read behind a full-width
    line of zeros, dropped again; an extra row without a time changes no time range.
    """
    try:
        return read_raw_times(chunk.data)
    except pl.exceptions.PolarsError:
        return read_raw_times(_FULL_WIDTH_LINE + chunk.data).slice(1)


def count_csv_rows_streamed(blocks: Iterable[bytes]) -> int:
    """Data rows of a CSV stream, counted as ``count_csv_rows`` counts the whole bytes (lines,
    a final one without its newline included, less a header), without holding them."""
    lines, first_line, last = 0, b"", b"\n"
    for block in blocks:
        if b"\n" not in first_line:  # the header rule reads the first line only
            first_line += block[: block.find(b"\n") + 1 or len(block)]
        lines += block.count(b"\n")
        last = block[-1:] or last
    if not first_line:
        return 0
    return lines + (0 if last == b"\n" else 1) - (1 if has_header(first_line) else 0)
