"""Bad bulk files: the checks a daily zip passes before it is stored, the empty-day marker, and
bronze's one rule for a malformed row (kept, line numbered, flagged with its reason)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile

import polars as pl
import pytest

from streaming.simulator.binance.bulk_faults import BulkFault, BulkFaultRule, broken_zip
from trading_assets.lib.lakehouse.bronze import (
    TOO_FEW_FIELDS,
    TOO_MANY_FIELDS,
    count_csv_rows,
    field_count_flags,
    parse_bronze,
)
from trading_assets.lib.lakehouse.bulk_checks import (
    BadBulkFileError,
    BulkFileProblem,
    check_empty_day,
    empty_marker_text,
    has_header,
    inspect_daily_zip,
)
from trading_assets.lib.lakehouse.bulk_replacement import IncomingTrades, missing_trade_ids
from trading_assets.lib.lakehouse.schemas import RAW_TRADE_COLUMNS

pytestmark = pytest.mark.faults

DAY = dt.date(2024, 3, 1)
DAY_MS = 1_709_251_200_000
MEMBER = "BTCUSDT-trades-2024-03-01.csv"
ZIP_NAME = "BTCUSDT-trades-2024-03-01.zip"
URL = f"https://data.example/{ZIP_NAME}"
HEADER = ",".join(RAW_TRADE_COLUMNS)
NOW = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)


def trade_line(trade_id: int) -> str:
    return f"{trade_id},10.5,1.0,10.5,{DAY_MS + trade_id},True,True"


def csv_of(ids: range, header: bool = False) -> bytes:
    lines = ([HEADER] if header else []) + [trade_line(i) for i in ids]
    return ("\n".join(lines) + "\n").encode()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def aggtrades_zip() -> bytes:
    line = f"1,10.5,1.0,1,1,{DAY_MS},True,True\n"
    return zipped({"BTCUSDT-aggTrades-2024-03-01.csv": line.encode() * 50})


GOOD_ZIP = zipped({MEMBER: csv_of(range(1, 201))})


def inspect(payload: bytes):
    return inspect_daily_zip(io.BytesIO(payload), MEMBER, URL)


def broken(fault: BulkFault, line: int = 3) -> bytes:
    return broken_zip(GOOD_ZIP, BulkFaultRule("BTCUSDT", DAY, fault, line), aggtrades_zip)


@pytest.mark.parametrize("header", [False, True])
def test_a_sound_zip_passes_with_its_row_count(header):
    payload = zipped({MEMBER: csv_of(range(1, 201), header)})

    report = inspect(payload)

    assert (report.member, report.rows, report.header) == (MEMBER, 200, header)


@pytest.mark.parametrize(
    ("fault", "problem", "says"),
    [
        (BulkFault.ZERO_BYTES, BulkFileProblem.ZERO_BYTES, "0 bytes"),
        (BulkFault.TRUNCATED, BulkFileProblem.TRUNCATED, "cut short"),
        (BulkFault.CORRUPT, BulkFileProblem.CORRUPT, MEMBER),
        (BulkFault.NOT_A_ZIP, BulkFileProblem.NOT_A_ZIP, "<!DOCTYPE html>"),
        (BulkFault.WRONG_MEMBER, BulkFileProblem.WRONG_MEMBER, "BTCUSDT-trades-2024-02-29.csv"),
        (BulkFault.TWO_MEMBERS, BulkFileProblem.WRONG_MEMBER, "-part2.csv"),
        (BulkFault.NOT_TRADES, BulkFileProblem.NOT_TRADES, f"line 1 of {MEMBER} has 8 fields"),
    ],
)
def test_each_bad_file_is_refused_in_one_line_naming_the_file_and_why(fault, problem, says):
    with pytest.raises(BadBulkFileError) as refused:
        inspect(broken(fault))

    message = str(refused.value)
    assert refused.value.problem is problem
    assert message.startswith(f"{URL}: ")
    assert says in message
    assert f"[{problem}]" in message and "\n" not in message


def test_a_member_whose_crc_does_not_match_is_refused():
    payload = bytearray(GOOD_ZIP)
    info = zipfile.ZipFile(io.BytesIO(GOOD_ZIP)).infolist()[0]
    central = payload.rindex(b"PK\x01\x02")
    for offset in (info.header_offset + 14, central + 16):  # the CRC-32 in both headers
        payload[offset] ^= 0xFF

    with pytest.raises(BadBulkFileError, match="CRC-32") as refused:
        inspect(bytes(payload))

    assert refused.value.problem is BulkFileProblem.CORRUPT


@pytest.mark.parametrize("fault", [BulkFault.EXTRA_FIELDS, BulkFault.MISSING_FIELDS])
def test_one_malformed_row_is_not_a_bad_file(fault):
    report = inspect(broken(fault, line=3))

    assert report.rows == 200


def test_a_zip_without_rows_passes_the_archive_checks_with_zero_rows():
    assert inspect(broken(BulkFault.EMPTY_CSV)).rows == 0
    assert inspect(zipped({MEMBER: HEADER.encode() + b"\n"})).rows == 0


def test_an_empty_day_needs_the_venues_marker_naming_that_very_zip():
    digest = hashlib.sha256(b"the empty zip").hexdigest()
    other = hashlib.sha256(b"another zip").hexdigest()

    with pytest.raises(BadBulkFileError, match=r"does not mark the day empty \(no .*\.EMPTY\)"):
        check_empty_day(None, digest, ZIP_NAME, URL)
    with pytest.raises(BadBulkFileError, match="not this file") as stale:
        check_empty_day(empty_marker_text(other, ZIP_NAME), digest, ZIP_NAME, URL)
    with pytest.raises(BadBulkFileError, match="unreadable"):
        check_empty_day("yes, empty", digest, ZIP_NAME, URL)
    check_empty_day(empty_marker_text(digest, ZIP_NAME), digest, ZIP_NAME, URL)

    assert stale.value.problem is BulkFileProblem.EMPTY_DAY


def test_a_header_is_a_first_line_of_column_names_and_nothing_else():
    assert has_header(f"{HEADER}\n1,2".encode())
    assert has_header(b"id\n")
    assert not has_header(csv_of(range(1, 3)))
    assert not has_header(b"-1,10.5,1.0\n")
    assert not has_header(b"x2,10.5,1.0\n")  # a damaged id is a row, judged as one
    assert not has_header(b"\n" + csv_of(range(1, 3)))  # so is a blank first line


def test_malformed_lines_are_kept_with_their_line_numbers_and_give_the_line_back():
    lines = [
        HEADER,
        trade_line(1),
        trade_line(2) + ",1",  # too many fields
        "3,10.5,1.0",  # too few
        "",  # blank
        trade_line(4) + "\r",  # a CRLF line is a good one
        trade_line(5),
    ]
    csv = "\n".join(lines).encode()  # no newline after the last line

    bronze = parse_bronze(csv, DAY, "BTCUSDT", ZIP_NAME, NOW)

    assert bronze["line_no"].to_list() == [2, 3, 4, 5, 6, 7]
    assert bronze.height == count_csv_rows(csv)
    rejoined = bronze.select(pl.concat_str(RAW_TRADE_COLUMNS, separator=",", ignore_nulls=True))
    assert rejoined.to_series().to_list() == [line.rstrip("\r") for line in lines[1:]]
    flags = bronze.select("line_no", **field_count_flags())
    assert flags.filter(pl.col(TOO_MANY_FIELDS))["line_no"].to_list() == [3]
    assert flags.filter(pl.col(TOO_FEW_FIELDS))["line_no"].to_list() == [4, 5]


@pytest.mark.parametrize(
    ("odd_line", "flag"),
    [
        (trade_line(2) + ",1", TOO_MANY_FIELDS),
        ("2,10.5,1.0", TOO_FEW_FIELDS),
        (trade_line(2).rsplit(",", 1)[0], TOO_FEW_FIELDS),  # only is_best_match missing
        ("", TOO_FEW_FIELDS),
    ],
)
def test_one_malformed_line_alone_is_kept_and_flagged(odd_line, flag):
    csv = "\n".join([trade_line(1), odd_line, trade_line(3)]).encode() + b"\n"

    bronze = parse_bronze(csv, DAY, "BTCUSDT", ZIP_NAME, NOW)

    flags = bronze.select("line_no", **field_count_flags())
    assert flags["line_no"].to_list() == [1, 2, 3]
    assert flags.filter(pl.col(flag))["line_no"].to_list() == [2]
    assert flags.select(pl.sum_horizontal(TOO_FEW_FIELDS, TOO_MANY_FIELDS).sum()).item() == 1


def test_a_well_formed_file_reads_the_same_as_line_by_line():
    good = csv_of(range(1, 50), header=True)

    fast = parse_bronze(good, DAY, "BTCUSDT", ZIP_NAME, NOW)
    slow = parse_bronze(good + b"\n", DAY, "BTCUSDT", ZIP_NAME, NOW)  # a blank last line

    assert fast["line_no"].to_list() == list(range(2, 51))
    assert slow.head(49).drop("ingested_at").equals(fast.drop("ingested_at"))
    assert slow["line_no"][-1] == 51


def test_a_live_row_has_no_field_count_problem():
    live = parse_bronze(csv_of(range(1, 3)), DAY, "BTCUSDT", "seg", NOW, "binance.live.trades")
    live = live.with_columns(is_best_match=pl.lit(None, dtype=pl.String))  # as landing keeps it

    flags = live.select(**field_count_flags())

    assert not flags[TOO_FEW_FIELDS].any() and not flags[TOO_MANY_FIELDS].any()


def test_only_trades_of_the_day_the_new_file_lacks_are_missing():
    held_lines = [trade_line(i) for i in (1, 2, 2, 3, 4)]  # 2 twice: the live overlap
    held_lines += [f"5,10.5,1.0,10.5,{DAY_MS - 1},True,True", "x6,10.5,1.0,10.5,0,True,True"]
    held = parse_bronze(("\n".join(held_lines) + "\n").encode(), DAY, "BTCUSDT", "seg", NOW)
    incoming = IncomingTrades(DAY)
    incoming.add(parse_bronze(csv_of(range(1, 4)), DAY, "BTCUSDT", ZIP_NAME, NOW))

    missing = missing_trade_ids(held, incoming.trade_ids, DAY)

    # 4 is a trade of the day; 5 is the day before, x6 has no id: silver would keep neither.
    assert missing.to_list() == [4]
    incoming.add(parse_bronze(csv_of(range(4, 5)), DAY, "BTCUSDT", ZIP_NAME, NOW))  # a chunk
    assert missing_trade_ids(held, incoming.trade_ids, DAY).is_empty()
    assert incoming.rows == 4
