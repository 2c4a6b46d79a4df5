"""Landing files' layout: where the sidecar's segments live and how a reader finds whole records.

Kept free of heavy imports (no polars, no pyiceberg), so the sidecar's landing process starts fast;
the bronze view of landed trades is in :mod:`trading_assets.lib.lakehouse.landing`.

Layout (shared by the writer in ``streaming.landing`` and every reader)::

    <root>/<kind>/<SYMBOL>/<YYYY-MM-DD>/<stem>.jsonl.open   being written by a live process
    <root>/<kind>/<SYMBOL>/<YYYY-MM-DD>/<stem>.jsonl        sealed: complete, fsynced, never changes

Each line is one JSON object (a msgspec record with its own field names) ended by ``\\n``. A torn
write can only damage the last line of an ``.open`` segment, so readers keep the prefix of
complete lines. Stems start with a zero-padded creation time, so name order is write order.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from trading_assets.lib.settings import load_settings

TRADES_KIND = "trades"
BOOK_TICKERS_KIND = "book_tickers"
PREDICTIONS_KIND = "predictions"
MODEL_ERROR_REASON = "model error"
"""How a landed prediction's ``reason`` starts when its model failed to score (no trade)."""

SEALED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"
SOURCE_LIVE = "binance.live.trades"
"""bronze ``source`` of rows built from landed trades (WebSocket ticks and their REST gap-fills)."""


def default_landing_root() -> Path:
    """The sidecar's landing folder (``TRADING_LANDING_DIR``; see the settings)."""
    return load_settings().landing_dir


def partition_dir(root: Path, kind: str, symbol: str, day: dt.date) -> Path:
    """Folder holding the segments of one kind × symbol × UTC day."""
    return Path(root) / kind / symbol.upper() / day.isoformat()


@dataclass(frozen=True)
class LandedSegment:
    """One segment file, located by its place in the layout."""

    path: Path
    kind: str
    symbol: str
    day: dt.date
    sealed: bool

    @property
    def stem(self) -> str:
        """The segment's name without suffix; stems sort in write order."""
        suffix = SEALED_SUFFIX if self.sealed else OPEN_SUFFIX
        return self.path.name.removesuffix(suffix)

    def relative_to(self, root: Path) -> str:
        """Path below the landing root, as kept in bronze's ``source_file``."""
        return self.path.relative_to(root).as_posix()


def list_segments(
    root: Path,
    kind: str,
    *,
    symbol: str | None = None,
    day: dt.date | None = None,
    include_open: bool = False,
) -> list[LandedSegment]:
    """Segments of ``kind`` (optionally one symbol and/or day), ordered by symbol, day and stem."""
    kind_dir = Path(root) / kind
    if not kind_dir.is_dir():
        return []
    found: list[LandedSegment] = []
    symbol_dirs = [kind_dir / symbol.upper()] if symbol else sorted(kind_dir.iterdir())
    for symbol_dir in symbol_dirs:
        if not symbol_dir.is_dir():
            continue
        day_dirs = [symbol_dir / day.isoformat()] if day else sorted(symbol_dir.iterdir())
        for day_dir in day_dirs:
            segment_day = _parse_day(day_dir.name)
            if segment_day is None or not day_dir.is_dir():
                continue
            for path in sorted(day_dir.iterdir()):
                sealed = path.name.endswith(SEALED_SUFFIX)
                if sealed or (include_open and path.name.endswith(OPEN_SUFFIX)):
                    found.append(LandedSegment(path, kind, symbol_dir.name, segment_day, sealed))
    return found


def _parse_day(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def complete_prefix_length(data: bytes) -> int:
    """Length of the longest prefix of ``data`` made of whole, well-formed JSON lines.

    Only the tail is inspected: everything before the last good line was fsynced before later
    writes began, while a crash (or a filesystem that extends a file before its data reaches the
    disk) may leave a partial line, or zero bytes, at the end.
    """
    end = data.rfind(b"\n") + 1
    while end > 0:
        start = data.rfind(b"\n", 0, end - 1) + 1
        try:
            msgspec.json.decode(data[start : end - 1])
        except msgspec.DecodeError:
            end = start
            continue
        return end
    return 0


def read_complete_lines(path: Path) -> bytes:
    """A segment's bytes up to its last complete record (all of it for a sealed segment)."""
    data = path.read_bytes()
    return data[: complete_prefix_length(data)]


def last_complete_record(path: Path, tail_bytes: int = 1 << 16) -> bytes | None:
    """The last complete JSON line of a segment, reading only its tail when that suffices."""
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        window = min(size, tail_bytes)
        while True:
            stream.seek(size - window)
            data = stream.read(window)
            end = complete_prefix_length(data)
            start = data.rfind(b"\n", 0, max(end - 1, 0)) + 1
            # A line starting at the window's edge may be cut off: widen the window to be sure.
            if end and (start > 0 or window == size):
                return data[start : end - 1]
            if window == size:
                return None
            window = min(size, window * 4)
