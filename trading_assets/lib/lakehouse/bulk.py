"""Download data.binance.vision daily trade files, verify their sha256, keep the original zip.

Layout (Binance's and the simulator's): ``{base}/data/spot/daily/trades/SYMBOL/
SYMBOL-trades-YYYY-MM-DD.zip`` plus ``.zip.CHECKSUM`` holding ``<sha256 hex>  <file name>``.
The zip and its CHECKSUM are stored under the warehouse's raw area through pyiceberg's FileIO, so
the same code writes to a local folder or to s3://. A ``file://`` base URL reads a local mirror.
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
from urllib.parse import urlparse

import httpx
from pyiceberg.io import FileIO

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


def daily_trades_file_name(symbol: str, day: dt.date) -> str:
    return f"{symbol}-trades-{day.isoformat()}.zip"


def daily_trades_relative_path(symbol: str, day: dt.date) -> str:
    return f"data/spot/daily/trades/{symbol}/{daily_trades_file_name(symbol, day)}"


def raw_uri_for(raw_root: str, symbol: str, day: dt.date) -> str:
    return f"{raw_root.rstrip('/')}/binance/{daily_trades_relative_path(symbol, day)}"


def publish_to_mirror(root: Path, symbol: str, day: dt.date, payload: bytes) -> Path:
    """Lay a daily zip and its CHECKSUM out as data.binance.vision does, under a local folder.

    ``file://<root>`` then serves as a bulk base URL (offline mirrors, benchmarks, tests).
    """
    target = root / daily_trades_relative_path(symbol, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    target.with_name(f"{target.name}.CHECKSUM").write_text(f"{digest}  {target.name}\n")
    return target


def parse_checksum(text: str) -> tuple[str, str]:
    """``"<hex>  <file name>"`` → (lower-case hex digest, file name)."""
    parts = text.strip().split()
    if len(parts) != 2 or len(parts[0]) != 64:
        raise ValueError(f"unrecognised CHECKSUM content: {text[:120]!r}")
    return parts[0].lower(), parts[1]


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
    source = io.new_input(f"{raw_uri}.CHECKSUM")
    if not source.exists():
        return None
    with source.open(seekable=False) as stream:
        return parse_checksum(stream.read().decode())[0]


def verify_stored(io: FileIO, raw_uri: str) -> str:
    """Check a stored zip against its stored CHECKSUM (catches a copy cut short); return digest."""
    expected = stored_checksum(io, raw_uri)
    actual = sha256_of(io, raw_uri)
    if expected is None or actual is None:
        raise FileNotFoundError(f"raw file or its CHECKSUM missing: {raw_uri}")
    if actual != expected:
        raise ChecksumMismatchError(f"{raw_uri}: sha256 {actual} != stored CHECKSUM {expected}")
    return actual


def download_daily_trades(
    base_url: str,
    symbol: str,
    day: dt.date,
    raw_root: str,
    io: FileIO,
    on_progress: ProgressCallback | None = None,
    client: httpx.Client | None = None,
) -> RawFile:
    """Fetch one day's trade zip, verify it against the published sha256, store zip + CHECKSUM.

    The zip is streamed to a local temporary file while hashing, and copied into the raw area
    only once the digest matches; the CHECKSUM is written last, so a stored zip without a
    matching CHECKSUM is never taken for a complete one.
    """
    file_name = daily_trades_file_name(symbol, day)
    source_url = f"{base_url.rstrip('/')}/{daily_trades_relative_path(symbol, day)}"
    raw_uri = raw_uri_for(raw_root, symbol, day)
    checksum_text = _fetch_text(f"{source_url}.CHECKSUM", client)
    expected, _ = parse_checksum(checksum_text)

    if stored_checksum(io, raw_uri) == expected and sha256_of(io, raw_uri) == expected:
        size = len(io.new_input(raw_uri))
        return RawFile(symbol, day, file_name, source_url, raw_uri, expected, size, False)

    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(prefix="bulk-", suffix=".zip") as staging:
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
        staging.seek(0)
        # Drop the old CHECKSUM first: a copy cut short must not pass verify_stored().
        if io.new_input(f"{raw_uri}.CHECKSUM").exists():
            io.delete(f"{raw_uri}.CHECKSUM")
        with io.new_output(raw_uri).create(overwrite=True) as target:
            shutil.copyfileobj(staging, target, CHUNK_BYTES)
    with io.new_output(f"{raw_uri}.CHECKSUM").create(overwrite=True) as target:
        target.write(f"{expected}  {file_name}\n".encode())
    return RawFile(symbol, day, file_name, source_url, raw_uri, expected, size, True)
