"""Reading an instrument's landed L2 book lines back (:mod:`trading_assets.lib.book.lines`), from
the landing folder or the object store, sealed segments only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec

from trading_assets.lib.book.lines import BookDiff, BookSnapshot
from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_SNAPSHOTS_KIND,
    BOOK_UPDATES_KIND,
    list_segments,
    read_complete_lines,
)

_DIFFS = msgspec.json.Decoder(BookDiff)
_SNAPSHOTS = msgspec.json.Decoder(BookSnapshot)


def read_landed_book(
    root: Path | str, instrument: str, day: dt.date
) -> tuple[list[BookDiff], list[BookSnapshot]]:
    """The diffs and snapshots of ``instrument`` landed on ``day`` (UTC, receive time), in
    landing order."""
    diffs = [
        _DIFFS.decode(line)
        for segment in list_segments(root, BOOK_UPDATES_KIND, instrument=instrument, day=day)
        for line in read_complete_lines(segment.location).splitlines()
    ]
    snapshots = [
        _SNAPSHOTS.decode(line)
        for segment in list_segments(root, BOOK_SNAPSHOTS_KIND, instrument=instrument, day=day)
        for line in read_complete_lines(segment.location).splitlines()
    ]
    return diffs, snapshots
