"""Bulk download from a file:// mirror in data.binance.vision's layout: checksums and storage."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from pyiceberg.io.pyarrow import PyArrowFileIO

from trading_assets.lib.lakehouse.bronze import count_csv_rows, read_raw_times
from trading_assets.lib.lakehouse.bulk import (
    BulkFileNotFoundError,
    ChecksumMismatchError,
    download_daily_trades,
    parse_checksum,
    publish_to_mirror,
    raw_uri_for,
    verify_stored,
)
from trading_assets.lib.lakehouse.chunks import read_csv_member

DAY = dt.date(2024, 3, 1)
CSV = b"1,10.0,1.0,10.0,1709251200000,True,True\n2,10.5,2.0,21.0,1709251200001,False,True\n"


def zipped(csv: bytes, name: str = "BTCUSDT-trades-2024-03-01.csv") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, csv)
    return buffer.getvalue()


@pytest.fixture()
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    publish_to_mirror(root, "BTCUSDT", DAY, zipped(CSV))
    return root


def test_download_verifies_and_keeps_the_original_zip(tmp_path, mirror):
    io_ = PyArrowFileIO()
    raw_root = (tmp_path / "raw").as_uri()
    progress: list[tuple[int, int | None]] = []

    raw = download_daily_trades(
        mirror.as_uri(), "BTCUSDT", DAY, raw_root, io_, lambda d, t: progress.append((d, t))
    )

    payload = zipped(CSV)
    assert raw.sha256 == hashlib.sha256(payload).hexdigest()
    assert raw.size_bytes == len(payload)
    assert raw.downloaded is True
    assert raw.raw_uri == raw_uri_for(raw_root, "BTCUSDT", DAY)
    assert verify_stored(io_, raw.raw_uri) == raw.sha256
    assert read_csv_member(io_, raw.raw_uri) == ("BTCUSDT-trades-2024-03-01.csv", CSV)
    assert progress[-1] == (len(payload), len(payload))


def test_an_unchanged_file_is_not_downloaded_again(tmp_path, mirror):
    io_ = PyArrowFileIO()
    raw_root = (tmp_path / "raw").as_uri()
    download_daily_trades(mirror.as_uri(), "BTCUSDT", DAY, raw_root, io_)

    again = download_daily_trades(mirror.as_uri(), "BTCUSDT", DAY, raw_root, io_)

    assert again.downloaded is False


def test_a_checksum_mismatch_stores_nothing(tmp_path, mirror):
    zip_path = next(mirror.rglob("*.zip"))
    zip_path.write_bytes(zipped(CSV + b"3,1.0,1.0,1.0,1709251200002,True,True\n"))
    io_ = PyArrowFileIO()
    raw_root = (tmp_path / "raw").as_uri()

    with pytest.raises(ChecksumMismatchError):
        download_daily_trades(mirror.as_uri(), "BTCUSDT", DAY, raw_root, io_)

    assert not io_.new_input(raw_uri_for(raw_root, "BTCUSDT", DAY)).exists()


def test_a_stored_copy_cut_short_fails_verification(tmp_path, mirror):
    io_ = PyArrowFileIO()
    raw = download_daily_trades(mirror.as_uri(), "BTCUSDT", DAY, (tmp_path / "raw").as_uri(), io_)
    stored = Path(raw.raw_uri.removeprefix("file://"))
    stored.write_bytes(stored.read_bytes()[:-10])

    with pytest.raises(ChecksumMismatchError):
        verify_stored(io_, raw.raw_uri)


def test_a_day_not_published_yet_is_reported_as_missing(tmp_path, mirror):
    with pytest.raises(BulkFileNotFoundError):
        download_daily_trades(
            mirror.as_uri(),
            "BTCUSDT",
            DAY + dt.timedelta(days=1),
            tmp_path.as_uri(),
            PyArrowFileIO(),
        )


def test_checksum_file_format():
    digest = "ab" * 32

    assert parse_checksum(f"{digest.upper()}  BTCUSDT-trades-2024-03-01.zip\n") == (
        digest,
        "BTCUSDT-trades-2024-03-01.zip",
    )
    with pytest.raises(ValueError):
        parse_checksum("not a checksum")


def test_row_count_ignores_a_header_and_tolerates_a_missing_final_newline():
    assert count_csv_rows(CSV) == 2
    assert count_csv_rows(CSV.rstrip(b"\n")) == 2
    assert count_csv_rows(b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + CSV) == 2
    assert count_csv_rows(b"") == 0


def test_raw_times_scan_only_the_time_column_and_never_fail_on_a_malformed_line():
    header = b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n"
    ms_and_us = (
        b"1,10.0,1.0,10.0,1709251200000,True,True\n2,10.0,1.0,10.0,1735689600000001,True,True\n"
    )
    ragged = b"3,10.0\n4,10.0,1.0,10.0,1709251205000,True,True,extra\n"

    times = read_raw_times(header + ms_and_us + ragged)

    assert times["time"].to_list() == ["1709251200000", "1735689600000001", None, "1709251205000"]
    assert read_raw_times(b"").height == 0


def store(tmp_path: Path, payload: bytes) -> str:
    path = tmp_path / "day.zip"
    path.write_bytes(payload)
    return path.as_uri()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_read_csv_member_returns_the_member_exactly(tmp_path, compression):
    csv = b"".join(b"%d,10.0,1.0,10.0,1709251200000,True,True\n" % i for i in range(5_000))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("BTCUSDT-trades-2024-03-01.csv", csv)

    member = read_csv_member(PyArrowFileIO(), store(tmp_path, buffer.getvalue()))

    assert member == ("BTCUSDT-trades-2024-03-01.csv", csv)


def test_read_csv_member_rejects_a_member_whose_crc_does_not_match(tmp_path):
    payload = bytearray(zipped(CSV))
    info = zipfile.ZipFile(io.BytesIO(payload)).infolist()[0]
    # The CRC-32 sits at offset 14 of the local header and 16 of the central directory entry.
    central = payload.rindex(b"PK\x01\x02")
    for offset in (info.header_offset + 14, central + 16):
        payload[offset] ^= 0xFF

    with pytest.raises(ValueError, match="CRC-32"):
        read_csv_member(PyArrowFileIO(), store(tmp_path, bytes(payload)))
