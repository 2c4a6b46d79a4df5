"""Reader for recorded exchange sessions: the project's own format and the common captures.

One frame a line, gzip or plain text, in one of three layouts:

* the project's own (hftbacktest's): ``<receive stamp> <raw json>``. A REST depth snapshot is a
  line whose JSON starts with ``{"lastUpdateId"``.
* cryptofeed's text captures: ``<stamp>: <raw json>`` for WebSocket frames,
  ``<url> -> <stamp>: <json>`` for REST responses, ``<url> <-> <stamp>`` for the connect marker
  (skipped), after an optional ``configuration: {…}`` header line (skipped).
* cryptofeed's jsonl captures: a ``{"t": "header", "exchange": …}`` object, then ``http`` (a REST
  answer), ``connect``, ``send`` (what the client sent: skipped) and ``recv`` (a WebSocket frame
  as received) objects, with ``ts`` the receive time and ``data`` the raw text.

Receive stamps count s, ms, µs or ns since the epoch, with a decimal fraction or without. A file's
unit is told from the magnitude of its first stamp: the one unit that dates it between 2009 and
2100 (the units are 1000× apart, so at most one does). Every later stamp must be dated in that
window by the same unit. A stamp no unit dates there, or a file whose stamps change unit, is
refused with the file and line named: read in the wrong unit, a replay would run 1000× too fast
or too slow.

The payload is kept byte for byte as the exchange sent it, so replays can be compared exactly.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WS = "ws"
# (unit, ns per unit), from the coarsest.
UNITS = (("s", 10**9), ("ms", 10**6), ("µs", 10**3), ("ns", 1))
EARLIEST = dt.datetime(2009, 1, 1, tzinfo=dt.UTC)  # before any crypto exchange
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
_EARLIEST_NS = int(EARLIEST.timestamp()) * 10**9
_LATEST_NS = int(LATEST.timestamp()) * 10**9
_CONFIGURATION = b"configuration:"


class RecordingError(ValueError):
    """A recording line that cannot be read as it stands (its file and line are named)."""


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded message: when it arrived, its exact bytes, and where it came from."""

    receive_ns: int
    payload: bytes
    source: str  # "ws" for stream frames, else the REST path (e.g. "/api/v3/depth?symbol=...")

    @property
    def is_rest(self) -> bool:
        """True for a REST response, False for a WebSocket frame."""
        return self.source != WS


def to_ns(text: str, ns_per_unit: int) -> int:
    """Exact conversion of a decimal stamp in a unit of ``ns_per_unit`` ns (no float rounding;
    digits finer than a ns are dropped)."""
    whole, _, frac = text.strip().partition(".")
    digits = len(str(ns_per_unit)) - 1
    return int(whole) * ns_per_unit + (int((frac + "0" * digits)[:digits]) if digits else 0)


def seconds_to_ns(text: str) -> int:
    """Exact conversion of a decimal seconds string (no float rounding)."""
    return to_ns(text, 10**9)


def stamp_unit(text: str) -> tuple[str, int] | None:
    """The unit (name, ns per unit) that dates ``text`` between 2009 and 2100, if one does."""
    whole = text.strip().partition(".")[0]
    if not whole.isdigit():
        return None
    for name, ns_per_unit in UNITS:
        if _EARLIEST_NS <= int(whole) * ns_per_unit < _LATEST_NS:
            return name, ns_per_unit
    return None


@dataclass
class _Clock:
    """A file's receive stamps: the unit its first one sets, held for the rest."""

    path: str
    unit: tuple[str, int] | None = None
    first: str = field(default="")

    def ns(self, text: str, line_number: int) -> int:
        if self.unit is not None:  # the common case: the file's unit again
            ns = _in_unit(text, self.unit[1])
            if ns is not None:
                return ns
        unit = stamp_unit(text)
        where = f"{self.path}:{line_number}"
        if unit is None:
            raise RecordingError(
                f"{where}: cannot tell the unit of the receive stamp {text!r}: no unit of s, ms, "
                f"µs or ns dates it between {EARLIEST.year} and {LATEST.year}"
            )
        if self.unit is None:
            self.unit, self.first = unit, text
        elif unit != self.unit:
            raise RecordingError(
                f"{where}: the receive stamp {text!r} is in {unit[0]}, but the file's first "
                f"({self.first!r}) is in {self.unit[0]}: a file whose stamps change unit is refused"
            )
        return to_ns(text, unit[1])


def _in_unit(text: str, ns_per_unit: int) -> int | None:
    """``text`` in ns if ``ns_per_unit`` dates it between 2009 and 2100, else None."""
    try:
        ns = to_ns(text, ns_per_unit) if "." in text else int(text) * ns_per_unit
    except ValueError:
        return None
    return ns if _EARLIEST_NS <= ns < _LATEST_NS else None


def _rest_path(url: str) -> str:
    path = url.split("://", 1)[-1]
    return path[path.index("/") :] if "/" in path else path


def _parse_text_line(line: bytes, clock: _Clock, number: int) -> RecordedFrame | None:
    if line[:1].isdigit():
        head, sep, payload = line.partition(b" ")
        if head.endswith(b":"):  # cryptofeed websocket frame
            return RecordedFrame(clock.ns(head[:-1].decode(), number), payload, WS)
        if not sep:
            raise RecordingError(
                f"{clock.path}:{number}: unrecognised recording line: {line[:80]!r}"
            )
        source = "/api/v3/depth" if payload.startswith(b'{"lastUpdateId"') else WS
        return RecordedFrame(clock.ns(head.decode(), number), payload, source)
    if line.startswith(_CONFIGURATION) or b" <-> " in line:  # header, connect marker
        return None
    url, sep, rest = line.partition(b" -> ")
    if not sep:
        raise RecordingError(f"{clock.path}:{number}: unrecognised recording line: {line[:80]!r}")
    stamp, _, payload = rest.partition(b": ")
    return RecordedFrame(clock.ns(stamp.decode(), number), payload, _rest_path(url.decode()))


def _jsonl_object(line: bytes, clock: _Clock, number: int) -> dict[str, Any]:
    try:
        # Numbers stay text, so a stamp converts exactly.
        entry = json.loads(line, parse_float=str, parse_int=str)
    except ValueError as error:
        raise RecordingError(f"{clock.path}:{number}: not a JSON capture line: {error}") from None
    if not isinstance(entry, dict) or "t" not in entry:
        raise RecordingError(f"{clock.path}:{number}: a capture line without a type ('t')")
    return entry


def _parse_jsonl_line(line: bytes, clock: _Clock, number: int) -> RecordedFrame | None:
    entry = _jsonl_object(line, clock, number)
    kind = entry["t"]
    if kind in ("header", "connect", "send"):
        return None
    if kind not in ("recv", "http"):
        raise RecordingError(f"{clock.path}:{number}: unknown capture line type {kind!r}")
    try:
        stamp, data = str(entry["ts"]), str(entry["data"])
        source = WS if kind == "recv" else _rest_path(str(entry["url"]))
    except KeyError as missing:
        raise RecordingError(f"{clock.path}:{number}: a {kind!r} line without {missing}") from None
    return RecordedFrame(clock.ns(stamp, number), data.encode(), source)


def _parse_line(line: bytes, clock: _Clock, number: int) -> RecordedFrame | None:
    line = line.rstrip(b"\r\n")
    if not line.strip():
        return None
    if line.startswith(b"{"):
        return _parse_jsonl_line(line, clock, number)
    return _parse_text_line(line, clock, number)


def _lines(path: str | Path) -> Iterator[bytes]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        yield from handle


def read_recording(path: str | Path) -> Iterator[RecordedFrame]:
    """Yield every frame of a recording in file order (:class:`RecordingError` on a line that
    cannot be read, naming it)."""
    clock = _Clock(str(path))
    for number, line in enumerate(_lines(path), start=1):
        frame = _parse_line(line, clock, number)
        if frame is not None:
            yield frame


def recording_exchange(path: str | Path) -> str | None:
    """The exchange a capture's header names (cryptofeed's ``exchange``, e.g. ``"COINBASE"``);
    None for a recording without a header that names one."""
    for number, line in enumerate(_lines(path), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(b"{"):
            entry = _jsonl_object(line, _Clock(str(path)), number)
            if entry.get("t") == "header" and entry.get("exchange"):
                return str(entry["exchange"]).upper()
        elif line.startswith(_CONFIGURATION):
            continue
        return None
    return None
