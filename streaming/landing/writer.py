"""Durable, rotated landing segments for one record kind (trades, book tickers, predictions).

``write`` only encodes a record and queues its line in memory (no disk I/O), so it is safe on the
event loop. ``flush`` writes the queued lines and fsyncs them; ``poll`` does whatever is due:
seal segments past their age or size, flush every ``flush_every_s``. With ``inline_poll`` (the
default) ``write`` calls ``poll`` itself when something is due; a process that must not block its
loop on fsync passes ``inline_poll=False`` and runs ``poll`` from a thread instead (see
:func:`streaming.landing.maintain`). After a SIGKILL at most the last ``flush_every_s`` of
records is lost; on the next start the killed process's ``.open`` segments are cut back to their
last complete record and sealed.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from streaming.landing.durable import fsync_directory, make_directories, write_all
from streaming.landing.recovery import recover_open_segments
from trading_assets.lib.lakehouse.landing import (
    BOOK_TICKERS_KIND,
    OPEN_SUFFIX,
    PREDICTIONS_KIND,
    SEALED_SUFFIX,
    TRADES_KIND,
    partition_dir,
)

# Which record field dates a record (first one present and not None wins), per known kind.
DEFAULT_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    TRADES_KIND: ("trade_ns",),
    # Spot bookTicker carries no event time; the receive time dates it then.
    BOOK_TICKERS_KIND: ("event_ns", "receive_ns"),
    PREDICTIONS_KIND: ("timestamp", "event_ns", "receive_ns"),  # Prediction.timestamp (ns)
}
_NS_PER_SECOND = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_SECOND
_EPOCH = dt.date(1970, 1, 1)


class LandingWriterClosedError(RuntimeError):
    """``write`` after ``close``."""


@dataclass
class _Segment:
    """One open segment: lines queued in memory, the file created at its first flush."""

    directory: Path
    stem: str
    opened_at: float
    pending: list[bytes] = field(default_factory=list)
    size: int = 0
    fd: int | None = None

    @property
    def open_path(self) -> Path:
        return self.directory / f"{self.stem}{OPEN_SUFFIX}"

    @property
    def sealed_path(self) -> Path:
        return self.directory / f"{self.stem}{SEALED_SUFFIX}"


class LandingWriter:
    """Append records of one kind to per symbol × UTC day segment files, durably.

    One writer process per ``root``/``kind``: on construction the writer seals the ``.open``
    segments that other, dead processes (or an earlier run with this pid) left behind.
    """

    def __init__(
        self,
        root: Path | str,
        kind: str,
        *,
        flush_every_s: float = 1.0,
        rotate_every_s: float = 20.0,
        max_segment_bytes: int = 64 << 20,
        time_fields: Sequence[str] | None = None,
        inline_poll: bool = True,
        recover: bool = True,
    ) -> None:
        self.root = Path(root)
        self.kind = kind
        self.flush_every_s = flush_every_s
        self.rotate_every_s = rotate_every_s
        self.max_segment_bytes = max_segment_bytes
        self.time_fields = tuple(time_fields or DEFAULT_TIME_FIELDS.get(kind, ("event_ns",)))
        self.inline_poll = inline_poll
        self.recovered: list[Path] = recover_open_segments(self.root, kind) if recover else []
        self._encoder = msgspec.json.Encoder()
        self._segments: dict[tuple[str, dt.date], _Segment] = {}
        self._state_lock = threading.Lock()  # guards _segments and their pending lines
        self._io_lock = threading.Lock()  # one thread at a time does disk I/O
        self._last_flush = time.monotonic()
        self._next_due = self._last_flush + min(flush_every_s, rotate_every_s)
        self._stem_ns = 0
        self._sequence = itertools.count()
        self._closed = False
        self.sealed: list[Path] = []

    def write(self, record: msgspec.Struct | Mapping[str, Any]) -> None:
        """Queue one record (a msgspec struct or a mapping with a ``symbol``) for its segment."""
        line = self._encoder.encode(record) + b"\n"
        key = (_symbol_of(record), self._day_of(record))
        with self._state_lock:
            if self._closed:
                raise LandingWriterClosedError(f"{self.kind} writer under {self.root} is closed")
            segment = self._segments.get(key)
            if segment is None:
                segment = self._segments[key] = self._new_segment(*key)
            segment.pending.append(line)
            segment.size += len(line)
            oversized = segment.size >= self.max_segment_bytes
        if self.inline_poll and (oversized or time.monotonic() >= self._next_due):
            self.poll()

    def poll(self) -> None:
        """Seal segments past ``rotate_every_s`` or ``max_segment_bytes``; flush when due."""
        with self._io_lock:
            now = time.monotonic()
            with self._state_lock:
                due = [
                    key
                    for key, segment in self._segments.items()
                    if segment.size >= self.max_segment_bytes
                    or now - segment.opened_at >= self.rotate_every_s
                ]
                to_seal = [self._segments.pop(key) for key in due]
            for segment in to_seal:
                self._seal(segment)
            if now - self._last_flush >= self.flush_every_s:
                self._flush_open_segments()
            # Writers on other threads may open segments meanwhile: read them under the lock.
            with self._state_lock:
                oldest = min((s.opened_at for s in self._segments.values()), default=now)
            self._next_due = min(
                self._last_flush + self.flush_every_s, oldest + self.rotate_every_s
            )

    def flush(self) -> None:
        """Write every queued record to its segment and fsync it (durable when this returns)."""
        with self._io_lock:
            self._flush_open_segments()

    def rotate(self) -> list[Path]:
        """Seal every open segment now; return the sealed paths (new writes open new segments)."""
        with self._io_lock:
            with self._state_lock:
                to_seal = list(self._segments.values())
                self._segments.clear()
            sealed = [self._seal(segment) for segment in to_seal]
        return [path for path in sealed if path is not None]

    def close(self) -> None:
        """Seal everything and refuse further writes (idempotent)."""
        with self._state_lock:
            self._closed = True
        self.rotate()

    def __enter__(self) -> LandingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _day_of(self, record: msgspec.Struct | Mapping[str, Any]) -> dt.date:
        mapping = type(record) is dict or isinstance(record, Mapping)
        for name in self.time_fields:
            value = record.get(name) if mapping else getattr(record, name, None)  # type: ignore[union-attr]
            if type(value) is int:
                return _utc_day(value)
        # A record without any of its time fields still lands, dated by arrival.
        return _utc_day(time.time_ns())

    def _new_segment(self, symbol: str, day: dt.date) -> _Segment:
        # Stems sort in creation order, also across restarts: wall-clock ns, never repeated.
        self._stem_ns = max(time.time_ns(), self._stem_ns + 1)
        stem = f"{self._stem_ns:020d}-{os.getpid()}-{next(self._sequence)}"
        directory = partition_dir(self.root, self.kind, symbol, day)
        return _Segment(directory=directory, stem=stem, opened_at=time.monotonic())

    def _flush_open_segments(self) -> None:
        with self._state_lock:
            segments = list(self._segments.values())
        for segment in segments:
            self._write_pending(segment)
        self._last_flush = time.monotonic()

    def _write_pending(self, segment: _Segment) -> None:
        with self._state_lock:
            lines, segment.pending = segment.pending, []
        if not lines:
            return
        if segment.fd is None:
            make_directories(segment.directory)
            segment.fd = os.open(
                segment.open_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644
            )
            fsync_directory(segment.directory)
        write_all(segment.fd, b"".join(lines))
        os.fsync(segment.fd)

    def _seal(self, segment: _Segment) -> Path | None:
        self._write_pending(segment)
        if segment.fd is None:
            return None
        os.close(segment.fd)
        segment.fd = None
        os.replace(segment.open_path, segment.sealed_path)
        fsync_directory(segment.directory)
        self.sealed.append(segment.sealed_path)
        return segment.sealed_path


def _symbol_of(record: msgspec.Struct | Mapping[str, Any]) -> str:
    mapping = type(record) is dict or isinstance(record, Mapping)
    symbol = record.get("symbol") if mapping else getattr(record, "symbol", None)  # type: ignore[union-attr]
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"a landed record needs a 'symbol', got {record!r:.200}")
    return symbol.upper()


def _field(record: msgspec.Struct | Mapping[str, Any], name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def _utc_day(epoch_ns: int) -> dt.date:
    return _day_number_to_date(epoch_ns // _NS_PER_DAY)


@functools.lru_cache(maxsize=64)
def _day_number_to_date(day_number: int) -> dt.date:
    # Every record asks for its day: one datetime per distinct day, not per record.
    return _EPOCH + dt.timedelta(days=day_number)
