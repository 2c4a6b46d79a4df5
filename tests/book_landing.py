"""L2 books landed as the sidecar lands them: a recorded Binance session through its book capture
and a real landing child, or a synthetic day's depth stream through its recorder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client import CollectorRegistry

from streaming.book.capture import BookCapture
from streaming.landing import BOOK_SNAPSHOTS_KIND, BOOK_UPDATES_KIND, LandingProcess, LandingWriter
from streaming.records import DepthSnapshot
from streaming.simulator.synthetic import SyntheticMarket
from tests.unit.test_book_capture import depth_records
from tests.unit.test_book_synthetic_day import synthetic_day_lines


def land_recorded_book(root: Path, shared_data: Path, symbol: str, snapshot_every_s: float) -> None:
    """Land ``symbol``'s recorded session (its REST snapshot and depth frames) under ``root``."""
    instrument = f"BINANCE:{symbol}"
    landing = LandingProcess(root)
    capture = BookCapture([instrument], landing, {}, CollectorRegistry(), snapshot_every_s)
    for record in depth_records(shared_data / "binance" / "ws", symbol):
        if isinstance(record, DepthSnapshot):
            capture.on_snapshot(instrument, record)
        else:
            capture.on_update(record)
    landing.close()


def land_synthetic_day(root: Path, market: SyntheticMarket, symbol: str, day: dt.date) -> None:
    """The synthetic day's depth stream, recorded by the sidecar's recorder, landed under
    ``root`` as the sidecar lands it."""
    _, diffs, snapshots = synthetic_day_lines(market, symbol, day)
    for kind, lines in ((BOOK_UPDATES_KIND, diffs), (BOOK_SNAPSHOTS_KIND, snapshots)):
        with LandingWriter(root, kind) as writer:
            for line in lines:
                writer.write(line)
