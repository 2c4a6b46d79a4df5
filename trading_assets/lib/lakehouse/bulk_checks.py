"""What a daily trades zip must be before it is stored, and when a day may hold no trades.

A published file whose sha256 matches its CHECKSUM can still be unusable: the venue may publish a
0-byte or cut-short zip, a damaged member, the wrong member or something that is not a zip at all.
Each is refused here, before anything is stored, with one line naming the file and the problem
(:class:`BadBulkFileError`). One malformed row is not a bad file: bronze keeps it and silver
quarantines it with its reason; only a member whose rows are mostly not trade rows is refused.

An empty day. Binance publishes a file for every listed day, and a day without a single trade on
a listed symbol almost always means a broken export, not a quiet market. Since the bulk day
replaces the day's bronze rows (the live rows included), taking an empty file at its word would
silently empty the partition. So a zip whose CSV holds no rows is taken only when the venue marks
the day empty: it publishes ``<zip name>.EMPTY`` next to the zip, holding ``<sha256 hex>  <zip
name>`` (the CHECKSUM format) of that very zip, so a marker never vouches for another file. The
marker is stored next to the raw zip and bronze checks it again. data.binance.vision publishes no
such marker, so an empty file from it is always refused; the exchange simulator serves one for a
day its bulk-fault knob marks empty.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, cast

from isal import isal_zlib

from trading_assets.lib.lakehouse.schemas import RAW_TRADE_COLUMNS

EMPTY_MARKER_SUFFIX = ".EMPTY"
FIELDS_PER_ROW = len(RAW_TRADE_COLUMNS)
READ_BYTES = 1 << 18  # compressed bytes per read: about 1.3 MB of CSV once inflated
INFLATED_BYTES = 4 << 20  # at most this much inflated at once: a zip bomb cannot balloon a read
SHAPE_SAMPLE_LINES = 100
SHAPE_SAMPLE_BYTES = 1 << 16
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, fixed fields, name and extra lengths
# A header's first field is a column name: letters and underscores only ("id"), never a number.
_HEADER_START = re.compile(rb"[A-Za-z_][A-Za-z_ ]*(,|\r?\n|$)")
# ISA-L's error class for a damaged deflate stream (its stub declares it an instance).
InflateError = cast("type[Exception]", isal_zlib.error)


class BulkFileProblem(StrEnum):
    """Why a bulk file is refused (the short code next to the one-line message)."""

    ZERO_BYTES = "zero_bytes"
    TRUNCATED = "truncated"
    NOT_A_ZIP = "not_a_zip"
    WRONG_MEMBER = "wrong_member"
    CORRUPT = "corrupt"
    NOT_TRADES = "not_trades"
    EMPTY_DAY = "empty_day"


class BadBulkFileError(ValueError):
    """A bulk file that must not be stored or loaded; the message names the file and the line."""

    def __init__(
        self, file: str, problem: BulkFileProblem, detail: str, line: int | None = None
    ) -> None:
        self.file, self.problem, self.detail, self.line = file, problem, detail, line
        super().__init__(f"{file}: {detail} [{problem}]")


@dataclass(frozen=True)
class MemberReport:
    """The CSV member of a zip that passed every check."""

    member: str
    rows: int  # data rows: lines, less a header
    csv_bytes: int
    header: bool


def has_header(csv_bytes: bytes) -> bool:
    """Binance's spot trade files have no header row; tolerate one (newer exports add it).

    A first line whose first field is a word (``id``) is a header; anything else, a blank line or
    garbage included, is a row, so it is kept and judged like every other row.
    """
    return _HEADER_START.match(csv_bytes) is not None


def expected_member(zip_name: str) -> str:
    """``BTCUSDT-trades-2024-03-01.zip`` holds exactly ``BTCUSDT-trades-2024-03-01.csv``."""
    return zip_name.removesuffix(".zip") + ".csv"


def parse_checksum(text: str) -> tuple[str, str]:
    """``"<hex>  <file name>"`` → (lower-case hex digest, file name)."""
    parts = text.strip().split()
    if len(parts) != 2 or len(parts[0]) != 64:
        raise ValueError(f"unrecognised CHECKSUM content: {text[:120]!r}")
    return parts[0].lower(), parts[1]


def inspect_daily_zip(source: IO[bytes], member_name: str, file: str) -> MemberReport:
    """Check a daily zip read from a seekable ``source`` (``file`` names it in errors).

    It must be a zip holding exactly ``member_name``, which must inflate whole to its recorded
    size and CRC-32, and whose rows must be shaped like trade rows. Streams the member (ISA-L,
    constant memory), so a busy day is checked without holding its CSV.
    """
    member = open_zip_member(source, member_name, file)
    scan = _MemberScan()
    for chunk in member_blocks(source, member, file):
        scan.add(chunk)
    header = has_header(scan.head)
    check_row_shape(scan.head, header, size=scan.size, member=member_name, file=file)
    rows = scan.lines - (1 if header else 0)
    return MemberReport(member_name, rows, scan.size, header)


def open_zip_member(source: IO[bytes], member_name: str | None, file: str) -> zipfile.ZipInfo:
    """The one member of a zip read from a seekable ``source``: ``member_name``, or with None its
    one CSV. An empty file, a file that is not a zip, a zip cut short and a zip holding anything
    else raise :class:`BadBulkFileError` naming ``file``."""
    size = source.seek(0, 2)
    source.seek(0)
    if size == 0:
        raise BadBulkFileError(file, BulkFileProblem.ZERO_BYTES, "the file is empty (0 bytes)")
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile:
        source.seek(0)
        raise unreadable_zip_error(file, source.read(64), size) from None
    with archive:
        names = archive.namelist()
        wanted = member_name or next((n for n in names if n.endswith(".csv")), "one CSV member")
        if names != [wanted]:
            detail = f"holds {names}, expected exactly [{wanted!r}]"
            raise BadBulkFileError(file, BulkFileProblem.WRONG_MEMBER, detail)
        (member,) = archive.infolist()
    return member


def unreadable_zip_error(file: str, head: bytes, size: int) -> BadBulkFileError:
    if head.startswith(b"PK\x03\x04"):
        detail = f"a zip cut short: {size} bytes and no central directory at the end"
        return BadBulkFileError(file, BulkFileProblem.TRUNCATED, detail)
    detail = f"not a zip archive ({size} bytes starting {head[:24]!r})"
    return BadBulkFileError(file, BulkFileProblem.NOT_A_ZIP, detail)


class _MemberScan:
    """Running size and line count of an inflating member, plus its first bytes (its CRC-32 is
    :func:`member_blocks`' to check)."""

    def __init__(self) -> None:
        self.size = 0
        self.newlines = 0
        self.last = b""
        self.head = b""

    def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        self.newlines += chunk.count(b"\n")
        self.last = chunk[-1:]
        if len(self.head) < SHAPE_SAMPLE_BYTES:
            self.head += chunk[: SHAPE_SAMPLE_BYTES - len(self.head)]

    @property
    def lines(self) -> int:
        """Lines, a final one without its newline included."""
        return self.newlines + (1 if self.last not in (b"", b"\n") else 0)


def member_data_offset(source: IO[bytes], member: zipfile.ZipInfo, file: str) -> int:
    """Where a member's compressed bytes start (after its local header)."""
    source.seek(member.header_offset)
    local = source.read(_LOCAL_HEADER.size)
    if len(local) < _LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
        detail = f"{member.filename} has no local header at offset {member.header_offset}"
        raise BadBulkFileError(file, BulkFileProblem.CORRUPT, detail)
    _, name_length, extra_length = _LOCAL_HEADER.unpack(local)
    return member.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def member_blocks(source: IO[bytes], member: zipfile.ZipInfo, file: str) -> Iterator[bytes]:
    """The member's bytes, inflated block by block with ISA-L (about twice zlib's speed), at
    most :data:`INFLATED_BYTES` at once, so a zip bomb cannot balloon a read. A damaged stream,
    or one whose size or CRC-32 is not what the zip records, raises BadBulkFileError."""
    if member.flag_bits & 0x1:
        raise BadBulkFileError(file, BulkFileProblem.CORRUPT, f"{member.filename} is encrypted")
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        detail = f"{member.filename} uses compression method {member.compress_type}"
        raise BadBulkFileError(file, BulkFileProblem.CORRUPT, detail)
    source.seek(member_data_offset(source, member, file))
    inflater = isal_zlib.decompressobj(-15)
    deflated = member.compress_type == zipfile.ZIP_DEFLATED
    remaining = member.compress_size
    size = crc = 0
    try:
        while remaining > 0:
            block = source.read(min(READ_BYTES, remaining))
            if not block:
                detail = f"{member.filename}'s data ends {remaining} bytes early"
                raise BadBulkFileError(file, BulkFileProblem.TRUNCATED, detail)
            remaining -= len(block)
            while block:
                inflated = inflater.decompress(block, INFLATED_BYTES) if deflated else block
                block = inflater.unconsumed_tail if deflated else b""
                size, crc = size + len(inflated), isal_zlib.crc32(inflated, crc)
                if size > member.file_size:
                    break  # more than the zip records: damaged, or a bomb; no need to go on
                if inflated:
                    yield inflated
            if size > member.file_size:
                break
        if deflated and size <= member.file_size:
            inflated = inflater.flush()
            size, crc = size + len(inflated), isal_zlib.crc32(inflated, crc)
            if inflated and size <= member.file_size:
                yield inflated
    except InflateError as error:
        detail = f"{member.filename} does not inflate ({error})"
        raise BadBulkFileError(file, BulkFileProblem.CORRUPT, detail) from None
    if size != member.file_size or crc != member.CRC:
        detail = (
            f"{member.filename} is damaged: {size} bytes with CRC-32 {crc:08x} inflated, "
            f"the zip records {member.file_size} bytes with {member.CRC:08x}"
        )
        raise BadBulkFileError(file, BulkFileProblem.CORRUPT, detail)
    if deflated and not inflater.eof:
        detail = f"{member.filename}'s deflate stream stops before its end"
        raise BadBulkFileError(file, BulkFileProblem.CORRUPT, detail)


def check_row_shape(head: bytes, header: bool, *, size: int, member: str, file: str) -> None:
    """Refuse a member whose first rows are mostly not trade rows (another kind of file).

    A trade row has seven fields and an integer id. A few malformed rows are silver's to
    quarantine; more than half of the first :data:`SHAPE_SAMPLE_LINES` means the file is not a
    trades CSV at all (aggTrades or klines under the wrong name, binary garbage).
    """
    lines = head.split(b"\n")
    if len(head) < size:
        lines = lines[:-1]  # the sample may end inside a line
    elif lines and lines[-1] == b"":
        lines = lines[:-1]  # the newline that ends the last line
    first = 2 if header else 1
    sample = lines[first - 1 : first - 1 + SHAPE_SAMPLE_LINES]
    bad = [
        (number, line)
        for number, line in enumerate(sample, start=first)
        if not _is_trade_row(line.rstrip(b"\r"))
    ]
    if sample and len(bad) * 2 > len(sample):
        number, line = bad[0]
        detail = (
            f"line {number} of {member} has {line.count(b',') + 1} fields ({line[:60]!r}) where a "
            f"trade row has {FIELDS_PER_ROW} with an integer id, as have {len(bad)} of its first "
            f"{len(sample)} rows: not a trades file"
        )
        raise BadBulkFileError(file, BulkFileProblem.NOT_TRADES, detail, line=number)


def _is_trade_row(line: bytes) -> bool:
    fields = line.split(b",")
    return len(fields) == FIELDS_PER_ROW and fields[0].isdigit()


def check_empty_day(marker: str | None, sha256: str, zip_name: str, file: str) -> None:
    """Accept a zip without rows only when ``marker`` (the venue's ``.EMPTY``) names this zip."""
    marker_name = f"{zip_name}{EMPTY_MARKER_SUFFIX}"
    if marker is None:
        detail = (
            f"{expected_member(zip_name)} holds no trades and the venue does not mark the day "
            f"empty (no {marker_name}): refusing to take it as a day without trades"
        )
        raise BadBulkFileError(file, BulkFileProblem.EMPTY_DAY, detail)
    try:
        digest, name = parse_checksum(marker)
    except ValueError:
        detail = f"{marker_name} is unreadable ({marker[:80]!r}): the empty day is not confirmed"
        raise BadBulkFileError(file, BulkFileProblem.EMPTY_DAY, detail) from None
    if (digest, name) != (sha256, zip_name):
        detail = (
            f"{marker_name} marks {name} with sha256 {digest[:12]}…, not this file "
            f"({sha256[:12]}…): the empty day is not confirmed"
        )
        raise BadBulkFileError(file, BulkFileProblem.EMPTY_DAY, detail)


def empty_marker_text(sha256: str, zip_name: str) -> str:
    """The ``.EMPTY`` marker of an empty day's zip (what the venue publishes, what is stored)."""
    return f"{sha256}  {zip_name}\n"
