"""L2 book capture: the sidecar's book recorder lands a book as segments of a sync snapshot,
every diff it applied and periodic snapshots, and a rebuild from those landed lines alone equals
the live book at every snapshot, on the recorded Binance sessions; a lost line or a broken chain
shows where it happened."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from streaming.book import BookRecorder
from streaming.recordings import read_recording
from streaming.records import DepthSnapshot, DepthUpdate
from streaming.venues.binance.book import OrderBook
from streaming.venues.binance.parse import parse_rest_depth, parse_stream_frame
from trading_assets.lib.book.lines import PERIODIC, SYNC, BookDiff, BookSnapshot
from trading_assets.lib.book.rebuild import rebuild

pytestmark = pytest.mark.backtest
SESSIONS = {
    "BTCUSDT": ("btcusdt_20240808.txt.gz", "btcusdt_20240809.txt.gz"),
    "ETHUSDT": ("ethusdt_20240808.txt.gz", "ethusdt_20240809.txt.gz"),
}
Depth = DepthUpdate | DepthSnapshot
DAY_NS = 86_400 * 1_000_000_000


def depth_records(folder: Path, session: str) -> list[Depth]:
    """The session's depth updates and its REST snapshot, in receive order."""
    records: list[Depth] = []
    for name in SESSIONS[session]:
        for frame in read_recording(folder / name):
            if frame.is_rest:
                records.append(parse_rest_depth(frame.payload, session, frame.receive_ns))
            elif isinstance(
                record := parse_stream_frame(frame.payload, frame.receive_ns), DepthUpdate
            ):
                records.append(record)
    return records


def record(recorder: BookRecorder, records: list[Depth]) -> list[BookDiff | BookSnapshot]:
    lines: list[BookDiff | BookSnapshot] = []
    for item in records:
        if isinstance(item, DepthSnapshot):
            lines += recorder.on_snapshot(item)
        else:
            lines += recorder.on_update(item)
    return lines


def landed(lines: list[BookDiff | BookSnapshot]) -> tuple[list[BookDiff], list[BookSnapshot]]:
    """The lines as written and read back (one JSON line each), split by kind."""
    diffs = [msgspec.json.decode(msgspec.json.encode(x), type=BookDiff)
             for x in lines if isinstance(x, BookDiff)]  # fmt: skip
    snapshots = [msgspec.json.decode(msgspec.json.encode(x), type=BookSnapshot)
                 for x in lines if isinstance(x, BookSnapshot)]  # fmt: skip
    return diffs, snapshots


@pytest.fixture(scope="module", params=list(SESSIONS))
def session(request, shared_data: Path) -> tuple[str, list[Depth]]:
    return request.param, depth_records(shared_data / "binance" / "ws", request.param)


def test_a_rebuild_from_the_landed_lines_equals_the_live_book_at_every_snapshot(session):
    # Arrange: a snapshot every second of receive time
    symbol, records = session
    recorder = BookRecorder(symbol, snapshot_every_s=1.0)

    # Act
    diffs, snapshots = landed(record(recorder, records))
    report = rebuild(diffs, snapshots)

    # Assert: segments started by their sync snapshots (one per UTC day: the sessions cross
    # midnight), with nothing lost; every diff the rebuild applied and every periodic snapshot
    # (about one a second for ten minutes) it matched, never crossed
    assert [s.kind for s in snapshots][:1] == [SYNC]
    syncs = [s for s in snapshots if s.kind == SYNC]
    assert all(s.gap is None for s in syncs)
    days = {d.receive_ns // DAY_NS for d in diffs}
    assert len(syncs) == len(days) == 2
    periodic = [s for s in snapshots if s.kind == PERIODIC]
    assert len(periodic) > 500
    assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
    assert (report.segments, report.snapshots_matched) == (len(syncs), len(periodic))
    assert report.diffs_applied == len(diffs) and report.diffs_skipped == 0
    updates = [r for r in records if isinstance(r, DepthUpdate)]
    assert diffs[-1].final_update_id == updates[-1].final_update_id
    # Every update after the sync snapshot landed as a diff, levels as sent
    after = [u for u in updates if u.final_update_id > snapshots[0].last_update_id]
    assert [(d.first_update_id, d.bids, d.asks) for d in diffs] == [
        (u.first_update_id, u.bids, u.asks) for u in after
    ]


def test_a_diff_lost_between_the_book_and_the_lakehouse_is_found(session):
    # Arrange: one landed diff goes missing
    symbol, records = session
    diffs, snapshots = landed(record(BookRecorder(symbol, snapshot_every_s=1.0), records))
    lost = diffs.pop(len(diffs) // 2)

    # Act
    report = rebuild(diffs, snapshots)

    # Assert: the rebuild stops where the chain breaks, naming the update it expected
    assert not report.ok
    (mismatch,) = report.breaks
    assert mismatch.last_update_id == lost.first_update_id - 1
    assert "does not continue" in mismatch.what


def test_a_broken_chain_ends_the_segment_and_the_next_one_says_why(session):
    # Arrange: the stream skips one update; a new REST snapshot is taken a little later
    symbol, records = session
    updates = [r for r in records if isinstance(r, DepthUpdate)]
    skipped = len(updates) // 2
    recorder = BookRecorder(symbol, snapshot_every_s=1.0)
    lines = record(
        recorder,
        [r for r in records if r is not updates[skipped]][: records.index(updates[skipped]) + 10],
    )
    assert recorder.needs_snapshot  # the gap was seen
    # The venue's answer a moment later: the whole book as of an update after the gap
    truth = OrderBook(symbol)
    for item in records[: records.index(updates[skipped]) + 20]:
        if isinstance(item, DepthSnapshot):
            truth.apply_snapshot(item)
        else:
            truth.apply_update(item)
    assert truth.last_update_id is not None
    fresh = DepthSnapshot(symbol, truth.last_update_id, tuple(truth.bids()), tuple(truth.asks()),
                          updates[skipped + 20].receive_ns)  # fmt: skip
    rest = records[records.index(updates[skipped]) + 10 :]

    # Act
    lines += recorder.on_snapshot(fresh)
    lines += record(recorder, rest)
    diffs, snapshots = landed(lines)
    report = rebuild(diffs, snapshots)

    # Assert: the segment the gap ended is followed by one whose sync snapshot names it (the
    # session also crosses midnight, which starts a segment with nothing lost); all rebuild
    # exactly, and the segment before the gap holds no diff from the skipped one on
    syncs = [s for s in snapshots if s.kind == SYNC]
    # A segment is named by its sync snapshot's receive time: a later run never reuses one
    assert [s.segment for s in syncs] == [s.taken_ns for s in syncs]
    assert sorted(s.segment for s in syncs) == [s.segment for s in syncs]
    gapped = [i for i, s in enumerate(syncs) if s.gap is not None]
    assert len(gapped) == 1 and len(syncs) == 3
    (after_gap,) = gapped
    assert str(updates[skipped + 1].first_update_id) in syncs[after_gap].gap
    # ... and when the sidecar saw it: the update that did not continue the chain
    assert syncs[after_gap].lost_ns == updates[skipped + 1].receive_ns
    assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
    assert report.segments == len(syncs)
    before_gap = syncs[after_gap - 1].segment
    skipped_id = updates[skipped].first_update_id
    assert not [d for d in diffs if d.segment == before_gap and d.final_update_id >= skipped_id]


def test_a_landing_pause_ends_the_segment_and_keeps_the_book(session):
    # Arrange: landing pauses a third of the way in and resumes at two thirds
    symbol, records = session
    recorder = BookRecorder(symbol, snapshot_every_s=1.0)
    third = len(records) // 3
    lines = record(recorder, records[:third])

    # Act
    paused_at = records[third].receive_ns
    recorder.pause("landing paused: disk full", paused_at)
    dropped = record(recorder, records[third : 2 * third])
    recorder.resume()
    lines += record(recorder, records[2 * third :])
    diffs, snapshots = landed(lines)
    report = rebuild(diffs, snapshots)

    # Assert: nothing was landed while paused; no new REST snapshot was needed, since the book
    # was kept; the next segment's sync snapshot says why, and both segments rebuild exactly
    assert dropped == []
    assert not recorder.needs_snapshot
    syncs = [s for s in snapshots if s.kind == SYNC]
    assert [s.gap for s in syncs] == [None, "landing paused: disk full"]
    assert [s.lost_ns for s in syncs] == [None, paused_at]
    assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
    assert report.segments == 2
    resumed_at = next(
        r for r in records[2 * third :] if isinstance(r, DepthUpdate) and r.final_update_id
        > syncs[0].last_update_id and r.receive_ns >= syncs[1].taken_ns
    )  # fmt: skip
    assert syncs[1].last_update_id == resumed_at.final_update_id


def test_a_new_utc_day_starts_a_segment_with_nothing_lost(session):
    # Arrange: the same session, moved so that midnight UTC falls in its middle
    symbol, records = session
    updates = [r for r in records if isinstance(r, DepthUpdate)]
    middle = updates[len(updates) // 2]
    shift = (middle.receive_ns // DAY_NS + 1) * DAY_NS - middle.receive_ns
    moved = [msgspec.structs.replace(r, receive_ns=r.receive_ns + shift) for r in records]
    recorder = BookRecorder(symbol, snapshot_every_s=60.0)

    # Act
    diffs, snapshots = landed(record(recorder, moved))

    # Assert: a second sync snapshot at the first update of the new day, with no gap, holding
    # the book just before it; each day's lines rebuild on their own
    syncs = [s for s in snapshots if s.kind == SYNC]
    assert [s.gap for s in syncs] == [None, None]
    assert syncs[1].taken_ns == middle.receive_ns + shift
    assert syncs[1].last_update_id == middle.first_update_id - 1
    for day in {s.taken_ns // DAY_NS for s in syncs}:
        of_day = [s for s in snapshots if s.taken_ns // DAY_NS == day]
        segments = {s.segment for s in of_day}
        report = rebuild([d for d in diffs if d.segment in segments], of_day)
        assert report.ok and report.segments == 1
    assert {d.receive_ns // DAY_NS for d in diffs if d.segment == syncs[1].segment} == {
        syncs[1].taken_ns // DAY_NS
    }
