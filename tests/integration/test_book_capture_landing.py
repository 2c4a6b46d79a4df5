"""The sidecar's book capture through its landing child, on a recorded Binance session: the
lines land per instrument and UTC day, a landing pause (the outlets dropping, as the disk guard
makes them) ends the segment without a REST snapshot, and what landed rebuilds exactly."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry

from streaming.book.capture import BookCapture
from streaming.landing import BOOK_SNAPSHOTS_KIND, BOOK_UPDATES_KIND, LandingProcess
from streaming.records import DepthSnapshot
from tests.unit.test_book_capture import depth_records
from trading_assets.lib.book.landed import read_landed_book
from trading_assets.lib.book.lines import SYNC
from trading_assets.lib.book.rebuild import rebuild
from trading_assets.lib.lakehouse.landing_layout import list_segments

pytestmark = pytest.mark.backtest
INSTRUMENT = "BINANCE:ETHUSDT"


def utc_day(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).date()


def test_a_landing_pause_ends_the_landed_segment_and_the_rest_rebuilds(tmp_path, shared_data):
    # Arrange: the session's depth through a capture landing in a child; its outlets drop what
    # they are handed for the middle third (landing paused)
    records = depth_records(shared_data / "binance" / "ws", "ETHUSDT")
    registry = CollectorRegistry()
    landing = LandingProcess(tmp_path / "landing")
    capture = BookCapture([INSTRUMENT, "COINBASE:BTC-USD"], landing, {}, registry, 1.0)
    outlets = [landing.outlet(BOOK_UPDATES_KIND), landing.outlet(BOOK_SNAPSHOTS_KIND)]
    third = len(records) // 3

    # Act
    for index, record in enumerate(records):
        if index == third:
            for outlet in outlets:
                outlet.drop()
        elif index == 2 * third:
            for outlet in outlets:
                outlet.land()
        if isinstance(record, DepthSnapshot):
            capture.on_snapshot(INSTRUMENT, record)
        else:
            capture.on_update(record)
    landing.close()

    # Assert: only the Binance instrument is recorded; its lines landed by receive day, and
    # rebuild exactly; the pause ended a segment, the next one says why; no snapshot was asked
    assert list(capture.recorders) == [INSTRUMENT]
    assert not capture.recorders[INSTRUMENT].needs_snapshot
    root = tmp_path / "landing"
    days = sorted({s.day for s in list_segments(root, BOOK_SNAPSHOTS_KIND)})
    assert len(days) == 2  # the session crosses midnight
    diffs, snapshots = [], []
    for day in days:
        day_diffs, day_snapshots = read_landed_book(root, INSTRUMENT, day)
        received = {utc_day(d.receive_ns) for d in day_diffs}
        assert received | {utc_day(s.taken_ns) for s in day_snapshots} == {day}
        diffs += day_diffs
        snapshots += day_snapshots
    report = rebuild(diffs, snapshots)
    assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
    gaps = [s.gap for s in snapshots if s.kind == SYNC]
    assert gaps.count("landing paused") == 1 and report.segments == len(gaps)
    landed = registry.get_sample_value(
        "sidecar_book_lines_total", {"symbol": INSTRUMENT, "kind": BOOK_UPDATES_KIND}
    )
    assert landed == len(diffs)
    assert registry.get_sample_value("sidecar_book_gaps_total", {"symbol": INSTRUMENT}) == 1
