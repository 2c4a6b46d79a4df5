"""Durable, rotated landing segments for one record kind (trades, book tickers, predictions).

``write`` only encodes a record and queues its line in memory (no disk I/O, no lock), so it is
safe on the event loop. ``flush`` moves the queued lines into their segments, writes and fsyncs
them; ``poll`` does whatever is due: seal segments past their age or size, flush every
``flush_every_s``. With ``inline_poll`` (the default) ``write`` calls ``poll`` itself when
something is due; a process that must not block its loop on fsync passes ``inline_poll=False``
and runs ``poll`` from a thread instead (see :func:`streaming.landing.maintain`). Each such poll
also writes what was queued, without fsync (the thread lets go of the GIL while it writes), so a
flush has little left to do, and fsyncs a segment once ``max_unsynced_bytes`` were written to it
since its last fsync, so a burst becomes durable as it goes; a segment may pass
``max_segment_bytes`` by what was written between two polls. After a SIGKILL at most the last
``flush_every_s`` of records is lost; on the next start the killed process's ``.open`` segments
are cut back to their last complete record and sealed. A write that finds the disk full is cut
back the same way at once, and raises :class:`~streaming.landing.disk.LandingDiskFullError` with
its lines still queued: the caller retries them later or drops them (``drop_unwritten``).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from streaming.landing.disk import LandingDiskFullError, is_disk_full
from streaming.landing.durable import fsync_directory, make_directories, write_all
from streaming.landing.recovery import recover_open_segments
from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_SNAPSHOTS_KIND,
    BOOK_TICKERS_KIND,
    BOOK_UPDATES_KIND,
    OPEN_SUFFIX,
    PAPER_DECISIONS_KIND,
    PAPER_FILLS_KIND,
    PREDICTIONS_KIND,
    SEALED_SUFFIX,
    TRADES_KIND,
    partition_dir,
)
from trading_assets.lib.lakehouse.records import DEFAULT_VENUE

log = logging.getLogger(__name__)

# Which record field dates a record (first one present and not None wins), per known kind.
DEFAULT_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    TRADES_KIND: ("trade_ns",),
    # Spot bookTicker carries no event time; the receive time dates it then.
    BOOK_TICKERS_KIND: ("event_ns", "receive_ns"),
    # A book's lines by receive time, as its segments are cut (see streaming.book.recorder).
    BOOK_UPDATES_KIND: ("receive_ns",),
    BOOK_SNAPSHOTS_KIND: ("taken_ns",),
    PREDICTIONS_KIND: ("timestamp", "event_ns", "receive_ns"),  # Prediction.timestamp (ns)
    PAPER_DECISIONS_KIND: ("time_ns",),
    PAPER_FILLS_KIND: ("time_ns",),
}
_NS_PER_SECOND = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_SECOND
_EPOCH = dt.date(1970, 1, 1)


class LandingWriterClosedError(RuntimeError):
    """``write`` after ``close``."""


@dataclass
class _Segment:
    """One open segment: its lines not yet written, in chunks; the file is created when the
    first ones are written."""

    directory: Path
    stem: str
    opened_at: float
    pending: list[bytes] = field(default_factory=list)
    size: int = 0
    fd: int | None = None
    unsynced: int = 0  # bytes written since its last fsync
    written: int = 0  # bytes in the file: whole records only

    @property
    def open_path(self) -> Path:
        return self.directory / f"{self.stem}{OPEN_SUFFIX}"

    @property
    def sealed_path(self) -> Path:
        return self.directory / f"{self.stem}{SEALED_SUFFIX}"


_Key = tuple[str, dt.date]  # a segment's (instrument, UTC day)


class LandingWriter:
    """Append records of one kind to per instrument × UTC day segment files, durably.

    A record's instrument is its ``venue`` and ``symbol`` (market records), or its ``symbol``
    when it has no venue (a prediction's symbol is an instrument id already).

    One writer process per ``root``/``kind``: on construction the writer seals the ``.open``
    segments that other, dead processes (or an earlier run with this pid, or the ``adopted``
    pids, known not to be writing ``kind``) left behind.
    """

    def __init__(
        self,
        root: Path | str,
        kind: str,
        *,
        flush_every_s: float = 1.0,
        rotate_every_s: float = 20.0,
        max_segment_bytes: int = 64 << 20,
        max_unsynced_bytes: int = 4 << 20,
        time_fields: Sequence[str] | None = None,
        inline_poll: bool = True,
        recover: bool = True,
        adopted: Sequence[int] = (),
    ) -> None:
        self.root = Path(root)
        self.kind = kind
        self.flush_every_s = flush_every_s
        self.rotate_every_s = rotate_every_s
        self.max_segment_bytes = max_segment_bytes
        self.max_unsynced_bytes = max_unsynced_bytes
        self.time_fields = tuple(time_fields or DEFAULT_TIME_FIELDS.get(kind, ("event_ns",)))
        self.inline_poll = inline_poll
        self.recovered: list[Path] = (
            recover_open_segments(self.root, kind, adopted) if recover else []
        )
        self._encoder = msgspec.json.Encoder()
        # What write_lines reads of a line: its venue, symbol and time fields, the rest skipped.
        route = msgspec.defstruct(
            "Route",
            [
                ("symbol", str),
                ("venue", str | None, None),
                *((name, int | None, None) for name in self.time_fields),
            ],
        )
        self._route: msgspec.json.Decoder[Any] = msgspec.json.Decoder(route)
        # Lines written but not yet taken into a segment, per segment key. Writers append and
        # the I/O side takes from the left; a key's queue is never replaced, so neither needs a
        # lock (deque appends and pops are atomic), and a sealed segment loses no line. One
        # queue per symbol and day written, kept for the writer's life: a few per day.
        self._queues: dict[_Key, deque[bytes]] = {}
        # Per struct type, which of ``time_fields`` it has; per symbol, the UTC day of its newest
        # record as (first ns, end ns, that day's queue): most writes compare two ints.
        self._struct_time_fields: dict[type, tuple[str, ...]] = {}
        self._days: dict[str, tuple[int, int, deque[bytes]]] = {}
        self._segments: dict[_Key, _Segment] = {}  # under _io_lock
        self._state_lock = threading.Lock()  # guards adding queues and closing
        self._io_lock = threading.Lock()  # one thread at a time moves lines and does disk I/O
        self._last_flush = time.monotonic()
        self._next_due = self._last_flush + min(flush_every_s, rotate_every_s)
        self._stem_ns = 0
        self._sequence = itertools.count()
        self._closed = False
        self._after_write = inline_poll  # whether write() has more to do: see _written
        self.sealed: list[Path] = []

    def write(self, record: msgspec.Struct | Mapping[str, Any]) -> None:
        """Queue one record (a msgspec struct or a mapping with a ``symbol``) for its segment."""
        if self._closed:
            raise LandingWriterClosedError(f"{self.kind} writer under {self.root} is closed")
        self._place(record, self._encoder.encode(record))
        if self._after_write:  # inline polling, or closed
            self._written()

    def write_lines(self, data: bytes) -> int:
        """Queue records encoded elsewhere: JSON lines, each ended by ``\\n``, as ``write`` would
        encode them. Each goes to its segment by its ``symbol`` and time fields, read without
        decoding the rest; returns how many were queued. This is how
        :class:`~streaming.landing.process.LandingProcess` hands its lines to the child."""
        if self._closed:
            raise LandingWriterClosedError(f"{self.kind} writer under {self.root} is closed")
        lines = data.split(b"\n")
        if lines[-1]:
            raise ValueError(f"{self.kind}: landed lines must end with a newline")
        del lines[-1]
        decode, place = self._route.decode, self._place
        for line in lines:
            place(decode(line), line)
        if self._after_write:
            self._written()
        return len(lines)

    def _place(self, record: Any, line: bytes) -> None:
        """Queue ``line``, the encoding of ``record``, for the segment of its symbol and day."""
        names = self._struct_time_fields.get(type(record))
        if names is None:  # a mapping, or a struct type met for the first time
            self._queue(self._key_of(record)).append(line)
            return
        # A struct type met before: its key without a date per record.
        for name in names:
            time_ns = getattr(record, name)
            if type(time_ns) is int:
                venue, instrument = getattr(record, "venue", None), record.symbol
                if venue is not None:
                    instrument = f"{venue}:{instrument}"
                elif ":" not in instrument:  # the default venue's record, read back from a line
                    instrument = f"{DEFAULT_VENUE}:{instrument}"
                day = self._days.get(instrument)
                if day is None or not day[0] <= time_ns < day[1]:
                    day = self._new_day(record, time_ns)
                day[2].append(line)
                return
        self._queue(self._key_of(record)).append(line)  # none of its time fields set: by arrival

    def _written(self) -> None:
        if self._closed:  # closed by another thread meanwhile: land it rather than lose it
            self.rotate()
        elif self.inline_poll:
            with self._io_lock:
                oversized = any(s.size >= self.max_segment_bytes for s in self._take_queued())
            if oversized or time.monotonic() >= self._next_due:
                self.poll()

    def poll(self) -> None:
        """Seal segments past ``rotate_every_s`` or ``max_segment_bytes``; flush when due."""
        with self._io_lock:
            self._take_queued()
            now = time.monotonic()
            due = [
                key
                for key, segment in self._segments.items()
                if segment.size >= self.max_segment_bytes
                or now - segment.opened_at >= self.rotate_every_s
            ]
            for key in due:
                self._seal(self._segments[key])
                del self._segments[key]  # kept when its seal failed: a later one retries it
            if now - self._last_flush >= self.flush_every_s:
                self._flush_open_segments()
            elif not self.inline_poll:  # write now, off the writing thread; fsync when due
                for segment in self._segments.values():
                    self._write_pending(segment, fsync=False)
            oldest = min((s.opened_at for s in self._segments.values()), default=now)
            self._next_due = min(
                self._last_flush + self.flush_every_s, oldest + self.rotate_every_s
            )

    def flush(self) -> None:
        """Write every queued record to its segment and fsync it (durable when this returns)."""
        with self._io_lock:
            self._take_queued()
            self._flush_open_segments()

    def rotate(self) -> list[Path]:
        """Seal every open segment now; return the sealed paths (new writes open new segments)."""
        sealed: list[Path] = []
        with self._io_lock:
            self._take_queued()
            for key, segment in list(self._segments.items()):
                path = self._seal(segment)
                del self._segments[key]
                if path is not None:
                    sealed.append(path)
        return sealed

    def close(self) -> None:
        """Seal everything and refuse further writes (idempotent). On a full disk the lines that
        cannot be written are dropped (logged) and what was written is sealed whole."""
        with self._state_lock:
            self._closed = self._after_write = True
        try:
            self.rotate()
        except LandingDiskFullError as error:
            dropped = self.drop_unwritten()
            log.warning("%s: %d %s records not landed", error, dropped, self.kind)
            self.rotate()

    def __enter__(self) -> LandingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _key_of(self, record: msgspec.Struct | Mapping[str, Any]) -> _Key:
        """(instrument, UTC day) of a mapping, of a struct dated by arrival, or of a struct type the
        writer meets for the first time (its next ones take the cached way in ``write``)."""
        key = _instrument_of(record), self._day_of(record)
        if isinstance(record, msgspec.Struct):
            self._struct_time_fields[type(record)] = tuple(
                name for name in self.time_fields if hasattr(record, name)
            )
        return key

    def _new_day(self, record: Any, time_ns: int) -> tuple[int, int, deque[bytes]]:
        start = time_ns - time_ns % _NS_PER_DAY
        instrument = _instrument_of(record)
        queue = self._queue((instrument, _utc_day(time_ns)))
        day = self._days[instrument] = (start, start + _NS_PER_DAY, queue)
        return day

    def _queue(self, key: _Key) -> deque[bytes]:
        queue = self._queues.get(key)
        if queue is None:
            with self._state_lock:
                queue = self._queues.setdefault(key, deque())
        return queue

    def _day_of(self, record: msgspec.Struct | Mapping[str, Any]) -> dt.date:
        mapping = type(record) is dict or isinstance(record, Mapping)
        for name in self.time_fields:
            value = record.get(name) if mapping else getattr(record, name, None)  # type: ignore[union-attr]
            if type(value) is int:
                return _utc_day(value)
        # A record without any of its time fields still lands, dated by arrival.
        return _utc_day(time.time_ns())

    def _take_queued(self) -> list[_Segment]:
        """Move every queued line into its key's segment (opened when needed), in write order;
        returns the segments that took lines. Caller holds ``_io_lock``."""
        with self._state_lock:
            queues = list(self._queues.items())
        took = []
        for key, queue in queues:
            count = len(queue)  # lines queued from here on wait for the next call
            if not count:
                continue
            taken = [queue.popleft() for _ in range(count)]
            taken.append(b"")  # the last line's newline
            lines = b"\n".join(taken)
            segment = self._segments.get(key)
            if segment is None:
                segment = self._segments[key] = self._new_segment(*key)
            segment.pending.append(lines)
            segment.size += len(lines)
            took.append(segment)
        return took

    def _new_segment(self, instrument: str, day: dt.date) -> _Segment:
        # Stems sort in creation order, also across restarts: wall-clock ns, never repeated.
        self._stem_ns = max(time.time_ns(), self._stem_ns + 1)
        stem = f"{self._stem_ns:020d}-{os.getpid()}-{next(self._sequence)}"
        directory = partition_dir(self.root, self.kind, instrument, day)
        return _Segment(directory=directory, stem=stem, opened_at=time.monotonic())

    def _flush_open_segments(self) -> None:
        for segment in self._segments.values():
            self._write_pending(segment)
        self._last_flush = time.monotonic()

    def _write_pending(self, segment: _Segment, fsync: bool = True) -> None:
        chunks, segment.pending = segment.pending, []
        if not chunks:
            if fsync and segment.unsynced and segment.fd is not None:
                os.fsync(segment.fd)
                segment.unsynced = 0
            return
        data = b"".join(chunks)
        # A burst is made durable as it goes, not only every flush_every_s: at most
        # max_unsynced_bytes of a segment wait for the next flush (or for its seal).
        sync = fsync or segment.unsynced + len(data) >= self.max_unsynced_bytes
        try:
            if segment.fd is None:
                make_directories(segment.directory)
                segment.fd = os.open(
                    segment.open_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644
                )
                fsync_directory(segment.directory)
            write_all(segment.fd, data)
            if sync:
                os.fsync(segment.fd)
        except OSError as error:
            if not is_disk_full(error):
                raise
            # The lines wait in memory (or are dropped by a pause); the file is cut back to the
            # whole records written before, freeing what this write took, and made durable so.
            segment.pending[:0] = chunks
            if segment.fd is not None:
                os.ftruncate(segment.fd, segment.written)
                os.fsync(segment.fd)
                segment.unsynced = 0
            raise LandingDiskFullError(self.kind, self.root, error) from error
        segment.written += len(data)
        segment.unsynced = 0 if sync else segment.unsynced + len(data)

    def drop_unwritten(self) -> int:
        """Drop every line not yet in its segment's file (a pause on a full disk); how many."""
        with self._io_lock:
            self._take_queued()
            dropped = 0
            for segment in self._segments.values():
                dropped += sum(chunk.count(b"\n") for chunk in segment.pending)
                segment.pending = []
                segment.size = segment.written
            return dropped

    def _seal(self, segment: _Segment) -> Path | None:
        self._write_pending(segment)
        if segment.fd is None:
            return None
        os.close(segment.fd)
        segment.fd = None
        if segment.written == 0:  # created, then its first write found the disk full
            segment.open_path.unlink()
            fsync_directory(segment.directory)
            return None
        os.replace(segment.open_path, segment.sealed_path)
        fsync_directory(segment.directory)
        self.sealed.append(segment.sealed_path)
        return segment.sealed_path


def _instrument_of(record: msgspec.Struct | Mapping[str, Any]) -> str:
    """``VENUE:SYMBOL`` of a market record; the ``symbol`` of a record without a venue."""
    mapping = type(record) is dict or isinstance(record, Mapping)
    symbol = record.get("symbol") if mapping else getattr(record, "symbol", None)  # type: ignore[union-attr]
    venue = record.get("venue") if mapping else getattr(record, "venue", None)  # type: ignore[union-attr]
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"a landed record needs a 'symbol', got {record!r:.200}")
    if venue is not None:
        return f"{venue}:{symbol}"
    # No venue: a prediction (its symbol is an instrument id), or a market record of the default
    # venue, whose encoding omits it (a line handed over by write_lines): a bare symbol.
    return symbol.upper() if ":" in symbol else f"{DEFAULT_VENUE}:{symbol.upper()}"


def _utc_day(epoch_ns: int) -> dt.date:
    return _day_number_to_date(epoch_ns // _NS_PER_DAY)


@functools.lru_cache(maxsize=64)
def _day_number_to_date(day_number: int) -> dt.date:
    # Every record asks for its day: one datetime per distinct day, not per record.
    return _EPOCH + dt.timedelta(days=day_number)
