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

    # Assert: one segment, started by its sync snapshot, whose every diff the rebuild applied and
    # whose every periodic snapshot (about one a second for ten minutes) it matched, never crossed
    assert [s.kind for s in snapshots][:1] == [SYNC] and snapshots[0].gap is None
    periodic = [s for s in snapshots if s.kind == PERIODIC]
    assert len(periodic) > 500
    assert report.ok, report.mismatches[:3]
    assert (report.segments, report.snapshots_matched) == (1, len(periodic))
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
    (mismatch,) = report.mismatches
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

    # Assert: two segments, the second's sync snapshot names the gap; both rebuild exactly
    syncs = [s for s in snapshots if s.kind == SYNC]
    assert [s.segment for s in syncs] == [1, 2]
    assert syncs[1].gap is not None and str(updates[skipped + 1].first_update_id) in syncs[1].gap
    assert report.ok, report.mismatches[:3]
    assert report.segments == 2
    assert not [
        d for d in diffs if d.segment == 1 and d.final_update_id >= updates[skipped].first_update_id
    ]
