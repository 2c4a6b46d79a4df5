"""A recorded Binance session's L2 book landed as the sidecar lands it: through its book capture
and a real landing child, into a landing folder the lakehouse reads."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from streaming.book.capture import BookCapture
from streaming.landing import LandingProcess
from streaming.records import DepthSnapshot
from tests.unit.test_book_capture import depth_records


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
