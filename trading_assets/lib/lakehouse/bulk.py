"""Download data.binance.vision daily trade files, verify them, keep the original zip.

Layout (Binance's and the simulator's): ``{base}/data/spot/daily/trades/SYMBOL/
SYMBOL-trades-YYYY-MM-DD.zip`` plus ``.zip.CHECKSUM`` holding ``<sha256 hex>  <file name>``.
A zip is stored only when it matches its published sha256 *and* passes
:func:`~trading_assets.lib.lakehouse.bulk_checks.inspect_daily_zip` (a zip holding exactly the
day's CSV, whole, shaped like trade rows); a day without rows also needs the venue's ``.EMPTY``
marker (see :mod:`~trading_assets.lib.lakehouse.bulk_checks`), stored next to the zip.
The files are stored under the warehouse's raw area through pyiceberg's FileIO, so the same code
writes to a local folder or to s3://. A ``file://`` base URL reads a local mirror.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast
from urllib.parse import urlparse

import httpx
from pyiceberg.io import FileIO

from trading_assets.lib.instruments import parse_instrument
from trading_assets.lib.lakehouse.bulk_checks import (
    EMPTY_MARKER_SUFFIX,
    MemberReport,
    check_empty_day,
    empty_marker_text,
    expected_member,
    inspect_daily_zip,
    parse_checksum,
)

CHUNK_BYTES = 1 << 20
ProgressCallback = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None when the server sent no length)."""


class ChecksumMismatchError(ValueError):
    pass


class BulkFileNotFoundError(FileNotFoundError):
    """The daily file is not published (yet): Binance uploads a day's file the next morning."""


@dataclass(frozen=True)
class RawFile:
    symbol: str
    day: dt.date
    file_name: str
    source_url: str
    raw_uri: str
    sha256: str
    size_bytes: int
    downloaded: bool  # False when the stored copy already matched the published checksum
    rows: int  # data rows of the CSV member (0 only for a day the venue marks empty)


BULK_VENUE = "BINANCE"
"""The venue whose daily trade files (data.binance.vision) are the lakehouse's bulk history; the
other venues' days are built from the trades the sidecar landed."""


class NoBulkFilesError(LookupError):
    """The instrument's venue publishes no daily trade files."""


def bulk_symbol(instrument: str) -> str | None:
    """The symbol the daily files of ``instrument`` are named by, None for a venue without."""
    venue, symbol = parse_instrument(instrument)
    return symbol if venue == BULK_VENUE else None


def raw_uri_of(raw_root: str, instrument: str, day: dt.date) -> str | None:
    """Where the day's stored bulk file of ``instrument`` is, None for a venue without."""
    symbol = bulk_symbol(instrument)
    return None if symbol is None else raw_uri_for(raw_root, symbol, day)


def daily_trades_file_name(symbol: str, day: dt.date) -> str:
    return f"{symbol}-trades-{day.isoformat()}.zip"


def daily_trades_relative_path(symbol: str, day: dt.date) -> str:
    return f"data/spot/daily/trades/{symbol}/{daily_trades_file_name(symbol, day)}"


def raw_uri_for(raw_root: str, symbol: str, day: dt.date) -> str:
    return f"{raw_root.rstrip('/')}/binance/{daily_trades_relative_path(symbol, day)}"


def publish_to_mirror(
    root: Path, symbol: str, day: dt.date, payload: bytes, *, marked_empty: bool = False
) -> Path:
    """Lay a daily zip and its CHECKSUM out as data.binance.vision does, under a local folder.

    ``file://<root>`` then serves as a bulk base URL (offline mirrors, benchmarks, tests).
    ``marked_empty`` also publishes the ``.EMPTY`` marker that lets a zip without rows in.
    """
    target = root / daily_trades_relative_path(symbol, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    target.with_name(f"{target.name}.CHECKSUM").write_text(f"{digest}  {target.name}\n")
    marker = target.with_name(f"{target.name}{EMPTY_MARKER_SUFFIX}")
    if marked_empty:
        marker.write_text(empty_marker_text(digest, target.name))
    else:
        marker.unlink(missing_ok=True)
    return target


def _local_path(url: str) -> Path:
    return Path(urlparse(url).path)


@contextmanager
def _open_source(
    url: str, client: httpx.Client | None
) -> Iterator[tuple[Iterator[bytes], int | None]]:
    if url.startswith("file://"):
        path = _local_path(url)
        if not path.exists():
            raise BulkFileNotFoundError(url)

        def read_chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    yield chunk

        yield read_chunks(), path.stat().st_size
        return
    own_client = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    try:
        with http.stream("GET", url) as response:
            if response.status_code == 404:
                raise BulkFileNotFoundError(url)
            response.raise_for_status()
            length = response.headers.get("content-length")
            yield response.iter_bytes(CHUNK_BYTES), int(length) if length else None
    finally:
        if own_client:
            http.close()


def _fetch_text(url: str, client: httpx.Client | None) -> str:
    with _open_source(url, client) as (chunks, _):
        return b"".join(chunks).decode()


def _fetch_optional_text(url: str, client: httpx.Client | None) -> str | None:
    try:
        return _fetch_text(url, client)
    except BulkFileNotFoundError:
        return None


def _read_text(io: FileIO, uri: str) -> str | None:
    source = io.new_input(uri)
    if not source.exists():
        return None
    with source.open(seekable=False) as stream:
        return stream.read().decode(errors="replace")


def sha256_of(io: FileIO, uri: str) -> str | None:
    """Digest of a stored file, or None when it does not exist."""
    source = io.new_input(uri)
    if not source.exists():
        return None
    digest = hashlib.sha256()
    with source.open(seekable=False) as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def stored_checksum(io: FileIO, raw_uri: str) -> str | None:
    text = _read_text(io, f"{raw_uri}.CHECKSUM")
    return None if text is None else parse_checksum(text)[0]


def verify_stored(io: FileIO, raw_uri: str) -> str:
    """Check a stored zip against its stored CHECKSUM (catches a copy cut short); return digest."""
    expected = stored_checksum(io, raw_uri)
    actual = sha256_of(io, raw_uri)
    if expected is None or actual is None:
        raise FileNotFoundError(f"raw file or its CHECKSUM missing: {raw_uri}")
    if actual != expected:
        raise ChecksumMismatchError(f"{raw_uri}: sha256 {actual} != stored CHECKSUM {expected}")
    return actual


def require_marked_empty(io: FileIO, raw_uri: str, sha256: str) -> None:
    """A stored zip without rows is a day only with its stored ``.EMPTY`` marker naming it."""
    marker = _read_text(io, f"{raw_uri}{EMPTY_MARKER_SUFFIX}")
    check_empty_day(marker, sha256, raw_uri.rsplit("/", 1)[-1], raw_uri)


def _inspect_stored(io: FileIO, raw_uri: str, member: str) -> MemberReport:
    with io.new_input(raw_uri).open(seekable=True) as stream:
        return inspect_daily_zip(cast(IO[bytes], stream), member, raw_uri)


def download_daily_trades(
    base_url: str,
    symbol: str,
    day: dt.date,
    raw_root: str,
    io: FileIO,
    on_progress: ProgressCallback | None = None,
    client: httpx.Client | None = None,
) -> RawFile:
    """Fetch one day's trade zip, verify it (sha256, then the zip itself), store zip + CHECKSUM.

    The zip is streamed to a local temporary file while hashing, checked there, and copied into
    the raw area only once it passed: a bad file raises :class:`BadBulkFileError` naming its URL,
    and leaves the stored copy, if any, as it was. The CHECKSUM is written last, so a stored zip
    without a matching CHECKSUM is never taken for a complete one. A stored copy that already
    matches is checked again (it may predate the checks) instead of being downloaded.
    """
    file_name = daily_trades_file_name(symbol, day)
    source_url = f"{base_url.rstrip('/')}/{daily_trades_relative_path(symbol, day)}"
    raw_uri = raw_uri_for(raw_root, symbol, day)
    member = expected_member(file_name)
    expected, _ = parse_checksum(_fetch_text(f"{source_url}.CHECKSUM", client))

    if stored_checksum(io, raw_uri) == expected and sha256_of(io, raw_uri) == expected:
        report = _inspect_stored(io, raw_uri, member)
        if report.rows == 0:
            require_marked_empty(io, raw_uri, expected)
        size = len(io.new_input(raw_uri))
        return RawFile(
            symbol, day, file_name, source_url, raw_uri, expected, size, False, report.rows
        )

    with tempfile.NamedTemporaryFile(prefix="bulk-", suffix=".zip") as staging:
        size = _download(source_url, client, staging, expected, on_progress)
        report = inspect_daily_zip(staging, member, source_url)
        marker = None
        if report.rows == 0:
            marker = _fetch_optional_text(f"{source_url}{EMPTY_MARKER_SUFFIX}", client)
            check_empty_day(marker, expected, file_name, source_url)
        _store(io, raw_uri, staging, marker)
    with io.new_output(f"{raw_uri}.CHECKSUM").create(overwrite=True) as target:
        target.write(f"{expected}  {file_name}\n".encode())
    return RawFile(symbol, day, file_name, source_url, raw_uri, expected, size, True, report.rows)


def _download(
    source_url: str,
    client: httpx.Client | None,
    staging: IO[bytes],
    expected: str,
    on_progress: ProgressCallback | None,
) -> int:
    """Stream the zip into ``staging`` while hashing; refuse it unless it matches ``expected``."""
    digest = hashlib.sha256()
    size = 0
    with _open_source(source_url, client) as (chunks, total):
        for chunk in chunks:
            staging.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if on_progress is not None:
                on_progress(size, total)
    if digest.hexdigest() != expected:
        raise ChecksumMismatchError(
            f"{source_url}: sha256 {digest.hexdigest()} != published {expected}"
        )
    staging.flush()
    return size


def _store(io: FileIO, raw_uri: str, staging: IO[bytes], marker: str | None) -> None:
    """Copy a checked zip (and its ``.EMPTY`` marker, if any) into the raw area."""
    # Drop the old CHECKSUM first: a copy cut short must not pass verify_stored().
    if io.new_input(f"{raw_uri}.CHECKSUM").exists():
        io.delete(f"{raw_uri}.CHECKSUM")
    staging.seek(0)
    with io.new_output(raw_uri).create(overwrite=True) as target:
        shutil.copyfileobj(staging, target, CHUNK_BYTES)
    marker_uri = f"{raw_uri}{EMPTY_MARKER_SUFFIX}"
    if marker is not None:
        with io.new_output(marker_uri).create(overwrite=True) as target:
            target.write(marker.encode())
    elif io.new_input(marker_uri).exists():
        io.delete(marker_uri)
