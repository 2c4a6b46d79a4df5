"""Bad bulk files on demand: the fault knob of the simulator's daily trades zips.

A rule names a symbol, a day and a fault; that day's ``trades`` zip is then served broken in that
way, and its CHECKSUM is the sha256 of what is served, as when the venue itself publishes a bad
file (a transfer that goes wrong is ``bad_checksum``: a CHECKSUM matching nothing). Set rules
with ``POST /_sim/bulk_faults`` ``{"symbol": "BTCUSDT", "day": "2024-03-01", "fault":
"truncated"}`` (``"line"`` picks the row of a row fault, 3 by default), list them with ``GET``,
clear them with ``DELETE``.

``empty_day`` is the one fault that is no fault: a zip with the day's CSV holding no rows, plus
the ``<zip name>.EMPTY`` marker (``<sha256 hex>  <zip name>``, the CHECKSUM format) by which the
venue says the day had no trades. ``empty_csv`` serves the same zip without the marker.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streaming.simulator.binance.bulk_format import member_info

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, fixed fields, name and extra lengths
_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>\n"
)
DEFAULT_LINE = 3


class BulkFault(StrEnum):
    """How a day's trades zip is broken."""

    ZERO_BYTES = "zero_bytes"  # an empty file
    TRUNCATED = "truncated"  # the zip's first half
    CORRUPT = "corrupt"  # bytes flipped inside the compressed member
    NOT_A_ZIP = "not_a_zip"  # an HTML error page served as the zip
    WRONG_MEMBER = "wrong_member"  # the right rows in a CSV named for the day before
    TWO_MEMBERS = "two_members"  # the day's CSV plus a second CSV
    NOT_TRADES = "not_trades"  # the day's aggTrades CSV under the trades member's name
    EMPTY_CSV = "empty_csv"  # the right member holding no rows, and no .EMPTY marker
    EMPTY_DAY = "empty_day"  # the same, marked empty by the venue's .EMPTY marker
    EXTRA_FIELDS = "extra_fields"  # row ``line`` with one field too many
    MISSING_FIELDS = "missing_fields"  # row ``line`` cut to its first three fields
    SHORT_DAY = "short_day"  # only the first half of the day's rows: a valid, shorter file
    BAD_CHECKSUM = "bad_checksum"  # a CHECKSUM that matches nothing


@dataclass(frozen=True)
class BulkFaultRule:
    symbol: str
    day: dt.date
    fault: BulkFault
    line: int = DEFAULT_LINE  # 1-based line of the CSV a row fault changes

    @classmethod
    def from_json(cls, payload: Any) -> BulkFaultRule:
        """A rule from ``{"symbol", "day", "fault"[, "line"]}``; a bad one raises ValueError."""
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object with symbol, day and fault")
        unknown = set(payload) - {"symbol", "day", "fault", "line"}
        if unknown:
            raise ValueError(f"unknown bulk fault fields: {sorted(unknown)}")
        try:
            fault = BulkFault(payload["fault"])
        except (KeyError, ValueError):
            raise ValueError(f"fault must be one of {[f.value for f in BulkFault]}") from None
        line = payload.get("line", DEFAULT_LINE)
        if not isinstance(line, int) or line < 1:
            raise ValueError("line must be a positive integer")
        return cls(
            symbol=str(payload.get("symbol", "")).upper(),
            day=dt.date.fromisoformat(str(payload.get("day", ""))),
            fault=fault,
            line=line,
        )

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "day": self.day.isoformat(), "fault": str(self.fault)}


class BulkFaults:
    """The rules in force, one per (symbol, day)."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, dt.date], BulkFaultRule] = {}

    def set(self, rule: BulkFaultRule) -> None:
        self._rules[(rule.symbol, rule.day)] = rule

    def clear(self) -> None:
        self._rules.clear()

    def rule_for(self, symbol: str, day: dt.date) -> BulkFaultRule | None:
        return self._rules.get((symbol.upper(), day))

    def as_json(self) -> dict[str, Any]:
        return {
            "rules": [rule.as_json() for rule in self._rules.values()],
            "faults": [fault.value for fault in BulkFault],
        }


def broken_zip(good_zip: bytes, rule: BulkFaultRule, agg_zip: Callable[[], bytes]) -> bytes:
    """The day's trades zip broken as ``rule`` says (``agg_zip`` gives its aggTrades zip)."""
    fault = rule.fault
    if fault is BulkFault.ZERO_BYTES:
        return b""
    if fault is BulkFault.TRUNCATED:
        return good_zip[: len(good_zip) // 2]
    if fault is BulkFault.CORRUPT:
        return _flip_member_bytes(good_zip)
    if fault is BulkFault.NOT_A_ZIP:
        return _ERROR_PAGE
    if fault is BulkFault.BAD_CHECKSUM:
        return good_zip
    name, csv = _only_member(good_zip)
    if fault is BulkFault.WRONG_MEMBER:
        day_before = (rule.day - dt.timedelta(days=1)).isoformat()
        return _zipped({name.replace(rule.day.isoformat(), day_before): csv}, rule.day)
    if fault is BulkFault.TWO_MEMBERS:
        return _zipped({name: csv, name.replace(".csv", "-part2.csv"): csv}, rule.day)
    if fault is BulkFault.NOT_TRADES:
        return _zipped({name: _only_member(agg_zip())[1]}, rule.day)
    if fault in (BulkFault.EMPTY_CSV, BulkFault.EMPTY_DAY):
        return _zipped({name: b""}, rule.day)
    return _zipped({name: _broken_rows(csv, rule)}, rule.day)


def _broken_rows(csv: bytes, rule: BulkFaultRule) -> bytes:
    lines = csv.splitlines(keepends=True)
    if rule.fault is BulkFault.SHORT_DAY:
        return b"".join(lines[: len(lines) // 2])
    index = min(rule.line, len(lines)) - 1
    text = lines[index].rstrip(b"\n")
    if rule.fault is BulkFault.EXTRA_FIELDS:
        lines[index] = text + b",1\n"
    elif rule.fault is BulkFault.MISSING_FIELDS:
        lines[index] = b",".join(text.split(b",")[:3]) + b"\n"
    return b"".join(lines)


def published_checksum(payload: bytes, zip_name: str, rule: BulkFaultRule | None) -> str:
    """The CHECKSUM served next to ``payload``: its sha256, or one of nothing for bad_checksum."""
    served = b"not this file" if rule and rule.fault is BulkFault.BAD_CHECKSUM else payload
    return f"{hashlib.sha256(served).hexdigest()}  {zip_name}\n"


def empty_marker(payload: bytes, zip_name: str, rule: BulkFaultRule | None) -> str | None:
    """The ``.EMPTY`` marker of a day marked empty (``empty_day``); None (404) for any other."""
    if rule is None or rule.fault is not BulkFault.EMPTY_DAY:
        return None
    return f"{hashlib.sha256(payload).hexdigest()}  {zip_name}\n"


def _only_member(payload: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (name,) = archive.namelist()
        return name, archive.read(name)


def _zipped(members: dict[str, bytes], day: dt.date) -> bytes:
    """The members zipped with the day's midnight as their time: the same bytes at every request,
    so the CHECKSUM served a moment earlier still matches."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for name, data in members.items():
            out.writestr(member_info(name, day), data, zipfile.ZIP_DEFLATED, 1)
    return buffer.getvalue()


def _flip_member_bytes(payload: bytes) -> bytes:
    """Invert 16 bytes in the middle of the first member's compressed data (headers intact)."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        member = archive.infolist()[0]
    _, name_length, extra_length = _LOCAL_HEADER.unpack_from(payload, member.header_offset)
    start = member.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    middle = start + member.compress_size // 2
    broken = bytearray(payload)
    for offset in range(middle, min(middle + 16, start + member.compress_size)):
        broken[offset] ^= 0xFF
    return bytes(broken)
