"""Landing files' layout: where the sidecar's segments live and how a reader finds whole records.

Kept free of heavy imports (no polars, no pyiceberg), so the sidecar's landing process starts fast;
the bronze view of landed trades is in :mod:`trading_assets.lib.lakehouse.landing`.

Layout (shared by the writer in ``streaming.landing`` and every reader)::

    <root>/<kind>/<INSTRUMENT>/<YYYY-MM-DD>/<stem>.jsonl.open   being written by a live process
    <root>/<kind>/<INSTRUMENT>/<YYYY-MM-DD>/<stem>.jsonl        sealed: complete, never changes

``<INSTRUMENT>`` is the instrument id as a path name (``BINANCE:BTCUSDT``, ``KRAKEN:BTC%2FUSD``;
see :func:`trading_assets.lib.instruments.path_name`). A folder named by a bare symbol is from
before instrument ids, and is listed as the Binance spot instrument it was.

The sidecar writes under its landing folder (``TRADING_LANDING_DIR``). The Dagster side reads
from the landing location (``TRADING_LANDING_URI``): locally that same folder, in production an
``s3://`` prefix the sidecar's shipper (``streaming.landing.shipper``) uploads each sealed segment
to, at the same key below the root. Readers take a root as a path or a URI.

Each line is one JSON object (a msgspec record with its own field names) ended by ``\\n``. A torn
write can only damage the last line of an ``.open`` segment, so readers keep the prefix of
complete lines. Stems start with a zero-padded creation time, so name order is write order.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import msgspec

from trading_assets.lib.instruments import from_path_name, parse_instrument, path_name
from trading_assets.lib.settings import load_settings

TRADES_KIND = "trades"
BOOK_TICKERS_KIND = "book_tickers"
BOOK_UPDATES_KIND = "book_updates"
"""Every diff a live L2 book applied (:class:`trading_assets.lib.book.lines.BookDiff`)."""
BOOK_SNAPSHOTS_KIND = "book_snapshots"
"""Whole live L2 books: each segment's sync one and the periodic ones (``BookSnapshot``)."""
PREDICTIONS_KIND = "predictions"
PAPER_DECISIONS_KIND = "paper_decisions"
"""What each role's paper account decided on (``trading_assets.lib.backtest.records``)."""
PAPER_FILLS_KIND = "paper_fills"
"""Each role's paper fills, as the backtest reports its own."""
MODEL_ERROR_REASON = "model error"
"""How a landed prediction's ``reason`` starts when its model failed to score (no trade)."""

SEALED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"
LIVE_SOURCE = "{venue}.live.trades"
"""bronze ``source`` of rows built from landed trades (WebSocket ticks and their gap-fills), by
venue in lower case: ``binance.live.trades``."""


def live_source(instrument: str) -> str:
    """The bronze ``source`` of an instrument's landed trades."""
    return LIVE_SOURCE.format(venue=parse_instrument(instrument)[0].lower())


def default_landing_root() -> Path:
    """The sidecar's landing folder (``TRADING_LANDING_DIR``; see the settings)."""
    return load_settings().landing_dir


def default_landing_location() -> str:
    """Where the Dagster side reads landed segments (``TRADING_LANDING_URI``): the landing
    folder itself locally, the ``s3://`` prefix the sidecar ships sealed segments to in prod."""
    return load_settings().landing_uri


def is_remote(location: Path | str) -> bool:
    """Whether ``location`` is an object-store URI (not a path or ``file://`` URI)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local_root(location: Path | str) -> Path:
    """The folder of a local location (a path or a ``file://`` URI)."""
    text = str(location)
    if text.startswith("file://"):
        return Path(unquote(urlsplit(text).path))
    return Path(location)


def partition_dir(root: Path, kind: str, instrument: str, day: dt.date) -> Path:
    """Folder holding the segments of one kind × instrument × UTC day."""
    return Path(root) / kind / path_name(instrument) / day.isoformat()


@dataclass(frozen=True)
class LandedSegment:
    """One segment file, located by its place in the layout: ``location`` is its path on this
    machine's disk, or its URI in the object store sealed segments are shipped to."""

    location: str
    kind: str
    folder: str
    """The instrument's folder name (see :attr:`instrument`)."""
    day: dt.date
    sealed: bool

    @property
    def instrument(self) -> str:
        """The instrument the segment's folder names."""
        return from_path_name(self.folder)

    @property
    def name(self) -> str:
        """The file name, suffix included."""
        return self.location.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        """The segment's name without suffix; stems sort in write order."""
        suffix = SEALED_SUFFIX if self.sealed else OPEN_SUFFIX
        return self.name.removesuffix(suffix)

    @property
    def key(self) -> str:
        """``<kind>/<INSTRUMENT>/<YYYY-MM-DD>/<name>``: its place below any landing root, the
        same in the landing folder and in the object store."""
        return f"{self.kind}/{self.folder}/{self.day.isoformat()}/{self.name}"

    @property
    def path(self) -> Path:
        """The local file (a segment in an object store has none: ``ValueError``)."""
        if is_remote(self.location):
            raise ValueError(f"{self.location} is not on this machine's disk")
        return Path(self.location)

    def relative_to(self, root: Path | str) -> str:
        """Path below the landing root, as kept in bronze's ``source_file``."""
        if not is_remote(self.location):
            return self.path.relative_to(local_root(root)).as_posix()
        prefix = str(root).rstrip("/") + "/"
        if not self.location.startswith(prefix):
            raise ValueError(f"{self.location} is not under {root}")
        return self.location.removeprefix(prefix)


def list_segments(
    root: Path | str,
    kind: str,
    *,
    instrument: str | None = None,
    day: dt.date | None = None,
    days: tuple[dt.date, dt.date] | None = None,
    include_open: bool = False,
) -> list[LandedSegment]:
    """Segments of ``kind`` (optionally one instrument, one day or an inclusive range of
    ``days``), ordered by instrument folder, day and stem.

    ``root`` is the landing folder or an object-store URI; an object store only ever holds
    sealed segments (the sidecar ships nothing else), so ``include_open`` finds none there.
    """
    if day is not None:
        days = (day, day)
    if is_remote(root):
        return _list_remote(str(root), kind, instrument, days)
    kind_dir = local_root(root) / kind
    if not kind_dir.is_dir():
        return []
    found: list[LandedSegment] = []
    folders = [kind_dir / path_name(instrument)] if instrument else sorted(kind_dir.iterdir())
    for folder in folders:
        if not folder.is_dir():
            continue
        day_dirs = [folder / day.isoformat()] if day else sorted(folder.iterdir())
        for day_dir in day_dirs:
            segment_day = _parse_day(day_dir.name)
            if segment_day is None or not _within(segment_day, days) or not day_dir.is_dir():
                continue
            for path in sorted(day_dir.iterdir()):
                sealed = path.name.endswith(SEALED_SUFFIX)
                if sealed or (include_open and path.name.endswith(OPEN_SUFFIX)):
                    found.append(LandedSegment(str(path), kind, folder.name, segment_day, sealed))
    return found


def _within(day: dt.date | None, days: tuple[dt.date, dt.date] | None) -> bool:
    return day is not None and (days is None or days[0] <= day <= days[1])


def _list_remote(
    root: str, kind: str, instrument: str | None, days: tuple[dt.date, dt.date] | None
) -> list[LandedSegment]:
    """Sealed segments under an object-store root. Without ``days``, one listing per instrument;
    with them, one per day folder in the range, so a reader of recent days does not page
    through the whole history."""
    # Imported here: pyarrow is slow to import, and the sidecar's landing child never lists
    # an object store.
    import pyarrow.fs as pafs

    from trading_assets.lib import storage

    kind_location = storage.join(root, kind)
    fs, kind_path = storage.filesystem_for(kind_location)

    def folders(path: str) -> list[str]:
        selector = pafs.FileSelector(path, recursive=False, allow_not_found=True)
        listed = fs.get_file_info(selector)
        return sorted(i.base_name for i in listed if i.type == pafs.FileType.Directory)

    prefixes: list[str] = []
    for name in [path_name(instrument)] if instrument else folders(kind_path):
        if days is None:
            prefixes.append(f"{kind_path}/{name}")
        elif days[0] == days[1]:
            prefixes.append(f"{kind_path}/{name}/{days[0].isoformat()}")
        else:
            in_range = [d for d in folders(f"{kind_path}/{name}") if _within(_parse_day(d), days)]
            prefixes += [f"{kind_path}/{name}/{d}" for d in in_range]
    found: list[LandedSegment] = []
    for prefix in prefixes:
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            segment = _remote_segment(kind_location, kind, info.path[len(kind_path) + 1 :])
            if segment is not None:
                found.append(segment)
    return sorted(found, key=lambda s: (s.folder, s.day, s.name))


def _remote_segment(kind_location: str, kind: str, below_kind: str) -> LandedSegment | None:
    """The sealed segment at ``<kind>/<below_kind>``, if that is where the layout puts one."""
    parts = below_kind.split("/")
    if len(parts) != 3:
        return None
    folder, day_name, name = parts
    segment_day = _parse_day(day_name)
    if segment_day is None or not name.endswith(SEALED_SUFFIX) or name.startswith((".", "_")):
        return None
    return LandedSegment(f"{kind_location}/{below_kind}", kind, folder, segment_day, True)


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


def read_complete_lines(location: Path | str) -> bytes:
    """A segment's bytes up to its last complete record (all of it for a sealed segment), from
    the landing folder or the object store (:class:`FileNotFoundError` when it is gone)."""
    if is_remote(location):
        from trading_assets.lib import storage  # see _list_remote

        data = storage.read_bytes(str(location))
    else:
        data = local_root(location).read_bytes()
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
