"""The ``depth`` group: its values on a hand-worked book, and live equal to batch on the recorded
Binance sessions: the sidecar's capture feeding its features line by line, closing seconds by
the clock, gives the rows the batch path computes from the landed lines, gaps included."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streaming.book import BookRecorder
from streaming.book.capture import BookCapture
from streaming.landing import BOOK_SNAPSHOTS_KIND, LandingProcess
from streaming.records import DepthSnapshot, DepthUpdate
from streaming.venues.binance.book import OrderBook
from tests.unit.test_book_capture import depth_records
from trading_assets.lib.book.landed import read_landed_book
from trading_assets.lib.book.lines import SYNC
from trading_assets.lib.book.rebuild import Book, LevelDiff, LevelSnapshot, levels_of
from trading_assets.lib.features import FeatureConfig
from trading_assets.lib.features.depth import COVERED, DepthFeatures, depth_rows
from trading_assets.lib.lakehouse.landing_layout import list_segments

pytestmark = pytest.mark.backtest
S = 1_000_000_000


def test_the_features_of_a_hand_worked_book():
    # Arrange: bids 100×5, 99×3 and asks 101×4, 102×2 at 0.5 s; at 1.2 s the best bid grows to
    # 7 (e = +2); at 1.7 s the best ask goes (e = +4, the old best ask's size); the segment is
    # lost at 3.5 s and a new one starts at 5.2 s
    features = DepthFeatures("X:Y", FeatureConfig(windows_s=(1, 2)))
    sync = LevelSnapshot(1, SYNC, 10, S // 2, [100, 99], [5, 3], [101, 102], [4, 2])
    lines = [
        sync,
        LevelDiff(1, 11, 11, 1_200_000_000, [100], [7], [], []),
        LevelDiff(1, 12, 12, 1_700_000_000, [], [], [101], [0]),
        LevelSnapshot(2, SYNC, 20, 5_200_000_000, [100], [1], [101], [1], lost_ns=3_500_000_000),
    ]

    # Act
    rows = [row for line in lines for row in features.on_line(line)]

    # Assert
    by_second = {row.event_timestamp_us // 1_000_000: row.values for row in rows}
    assert sorted(by_second) == [1, 2, 3, 4, 5]
    first, second = by_second[1], by_second[2]
    assert (first["ofi_1s"], first["ofi_2s"]) == (0.0, None)  # no flow yet; 2 s not held yet
    assert second["ofi_1s"] == pytest.approx(2 * 1 * 6 / 9)  # Σe = 6, top depth 7 + 2
    assert second["ofi_2s"] == pytest.approx(2 * 2 * 6 / (9 + 9))
    assert second["depth_imb_5"] == pytest.approx((7 + 3 - 2) / (7 + 3 + 2))
    assert second["l2_spread_bps"] == pytest.approx(2e4 * 2 / 202)
    assert second["l2_microprice_dev"] == pytest.approx(2 * (7 - 2) / 9 / 202)
    assert second["book_slope"] is None  # fewer than 20 levels a side
    # Covered until the loss at 3.5 s; the seconds after it have no feature at all
    assert [by_second[s][COVERED] for s in (1, 2, 3, 4, 5)] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert all(v is None for k, v in by_second[4].items() if k != COVERED)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_live_rows_equal_the_batch_rows_of_the_landed_lines(symbol, shared_data, tmp_path):
    # Arrange: the session through the sidecar's capture, with a skipped update a third of the
    # way in (a gap) and a REST snapshot a little after it; the clock closes seconds 250 ms
    # after each update
    records = depth_records(shared_data / "binance" / "ws", symbol)
    instrument = f"BINANCE:{symbol}"
    landing = LandingProcess(tmp_path / "landing")
    capture = BookCapture([instrument], landing, {}, CollectorRegistry(), 1.0)
    updates = [r for r in records if isinstance(r, DepthUpdate)]
    skipped = updates[len(updates) // 3]
    fresh_at = records.index(updates[len(updates) // 3 + 30])
    live = []
    for index, record in enumerate(records):
        if record is skipped:
            continue
        if isinstance(record, DepthSnapshot):
            live += capture.on_snapshot(instrument, record)
        else:
            live += capture.close_until(record.receive_ns - 250_000_000)
            live += capture.on_update(record)
        if index == fresh_at:  # the venue's answer: its book as of this update
            fresh = venue_book(symbol, records[: index + 1], record.receive_ns)
            live += capture.on_snapshot(instrument, fresh)
    landing.close()
    diffs, snapshots = landed_lines(tmp_path / "landing", instrument)

    # Act
    batch = depth_rows(instrument, [levels_of(d) for d in diffs], [levels_of(s) for s in snapshots])

    # Assert: one row per second, the gap's seconds uncovered, every batch row equal to live's
    assert [s.gap is not None for s in snapshots if s.kind == SYNC].count(True) == 1
    live_by_time = {row.event_timestamp_us: row.values for row in live}
    assert len(batch) > 500 and len(live_by_time) >= len(batch)
    uncovered = [row for row in batch if row.values[COVERED] == 0.0]
    assert 0 < len(uncovered) < 30
    for row in batch:
        assert _same(row.values, live_by_time[row.event_timestamp_us]), row.event_timestamp_us
    assert sum(row.values["ofi_60s"] is not None for row in batch) > 300


def venue_book(symbol: str, records: list, receive_ns: int) -> DepthSnapshot:
    """The venue's whole book after ``records`` (every update, none skipped)."""
    book = OrderBook(symbol)
    for record in records:
        if isinstance(record, DepthSnapshot):
            book.apply_snapshot(record)
        else:
            book.apply_update(record)
    assert book.last_update_id is not None
    bids, asks = tuple(book.bids()), tuple(book.asks())
    return DepthSnapshot(symbol, book.last_update_id, bids, asks, receive_ns)


def landed_lines(root: Path, instrument: str) -> tuple[list, list]:
    diffs, snapshots = [], []
    for day in sorted({s.day for s in list_segments(root, BOOK_SNAPSHOTS_KIND)}):
        day_diffs, day_snapshots = read_landed_book(root, instrument, day)
        diffs += day_diffs
        snapshots += day_snapshots
    return diffs, snapshots


def _same(a: dict, b: dict) -> bool:
    def close(x: float | None, y: float | None) -> bool:
        if x is None or y is None:
            return x is None and y is None
        return math.isclose(x, y, rel_tol=0, abs_tol=1e-9)

    return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)


def test_the_top_levels_are_the_whole_book_sorted(shared_data):
    # Arrange: the recorded BTCUSDT session's lines, and the book rebuilt beside the features
    symbol = "BTCUSDT"
    recorder = BookRecorder(symbol, snapshot_every_s=60.0)
    lines = []
    for record in depth_records(shared_data / "binance" / "ws", symbol):
        if isinstance(record, DepthSnapshot):
            lines += recorder.on_snapshot(record)
        else:
            lines += recorder.on_update(record)
    levels = [levels_of(line) for line in lines]
    features = DepthFeatures("BINANCE:BTCUSDT")
    book: Book | None = None

    # Act / Assert: at every second, the imbalances and the slope from the features' kept
    # order equal those of the whole book sorted afresh
    checked = 0
    for line in levels:
        for row in features.on_line(line):
            assert book is not None
            bids = sorted(book.bids.items(), reverse=True)[:20]
            asks = sorted(book.asks.items())[:20]
            for k in (5, 10, 20):
                b, a = sum(q for _, q in bids[:k]), sum(q for _, q in asks[:k])
                assert row.values[f"depth_imb_{k}"] == (b - a) / (b + a)
            checked += 1
        if isinstance(line, LevelSnapshot) and line.kind == SYNC:
            book = Book.of(line)
        elif isinstance(line, LevelDiff) and book is not None:
            book.apply(line)
    assert checked > 600


def test_a_new_run_after_a_stop_leaves_the_time_between_uncovered():
    # Arrange: a run's segment whose last line is at 2.3 s; the next run's first sync snapshot
    # (no gap named: a new run names none) at 6.4 s, at a later update; a midnight-like sync
    # that continues the chain at 8.2 s
    features = DepthFeatures("X:Y", FeatureConfig(windows_s=(1, 2)))
    lines = [
        LevelSnapshot(1, SYNC, 10, S // 2, [100], [5], [101], [4]),
        LevelDiff(1, 11, 11, 2_300_000_000, [100], [6], [], []),
        LevelSnapshot(2, SYNC, 50, 6_400_000_000, [100], [2], [101], [2]),
        LevelSnapshot(3, SYNC, 50, 8_200_000_000, [100], [2], [101], [2]),
        LevelDiff(3, 51, 51, 9_500_000_000, [100], [3], [], []),
    ]

    # Act
    rows = [row for line in lines for row in features.on_line(line)]

    # Assert: covered through the old run's last line, uncovered until the new run's sync,
    # covered from then on, the continuing sync included
    covered = {row.event_timestamp_us // 1_000_000: row.values[COVERED] for row in rows}
    assert covered == {1: 1.0, 2: 1.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 1.0, 8: 1.0, 9: 1.0}
