"""A whole synthetic day of L2 book: the simulator's depth stream for one day (a diff every
100 ms in which the book changed, as its live server publishes them), recorded by the sidecar's
book recorder from the opening REST snapshot; the rebuild from the landed lines equals the live
book at every one of the day's snapshots and ends at the simulator's own closing book."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streaming.book import BookRecorder
from streaming.simulator import synthetic_book as book
from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.tape import DayTape
from streaming.venues.binance.parse import parse_depth_update, parse_rest_depth
from tests.unit.test_book_capture import landed
from trading_assets.lib.book.lines import PERIODIC, SYNC, BookDiff, BookSnapshot
from trading_assets.lib.book.rebuild import Book, rebuild

pytestmark = pytest.mark.backtest
DAY = dt.date(2024, 5, 2)
DEPTH_INTERVAL_US = 100_000


def synthetic_day_lines(
    market: SyntheticMarket, symbol: str, day: dt.date, snapshot_every_s: float = 60.0
) -> tuple[DayTape, list[BookDiff], list[BookSnapshot]]:
    """The day's depth stream as the simulator's live server publishes it (the last order of
    every 100 ms window that changed the book, received at the window's end), recorded by the
    sidecar's recorder from the opening REST snapshot: the lines it lands."""
    tape = market.tape(symbol, day)
    inst = tape.instrument
    window = tape.order_time_us // DEPTH_INTERVAL_US
    last_in_window = np.flatnonzero(np.diff(window, append=window[-1] + 1))
    opening = book.state_after(tape, -1)
    start_ns = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 1_000_000_000
    recorder = BookRecorder(inst.symbol, snapshot_every_s)
    lines = recorder.on_snapshot(
        parse_rest_depth(book.snapshot_json(inst, opening, 1000), inst.symbol, start_ns)
    )
    before = opening
    for order in last_in_window:
        after = book.state_after(tape, int(order))
        if after == before:
            continue
        end_us = (int(window[order]) + 1) * DEPTH_INTERVAL_US
        payload = book.depth_update_json(inst, before, after, end_us // 1000)
        lines += recorder.on_update(parse_depth_update(payload, end_us * 1000))
        before = after
    diffs, snapshots = landed(lines)
    return tape, diffs, snapshots


def test_a_synthetic_day_rebuilds_to_every_snapshot_and_to_the_closing_book():
    # Arrange: the day's depth stream through the recorder
    tape, diffs, snapshots = synthetic_day_lines(SyntheticMarket(seed=3), "BTCUSDT", DAY)
    inst = tape.instrument

    # Act
    report = rebuild(diffs, snapshots)

    # Assert: one segment over the whole day, a snapshot a minute, all matched, never crossed
    assert [s.kind for s in snapshots].count(SYNC) == 1
    periodic = [s for s in snapshots if s.kind == PERIODIC]
    assert len(periodic) >= 1300  # at the first diff after each minute: quiet minutes have none
    assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
    assert (report.segments, report.snapshots_matched) == (1, len(periodic))
    assert report.diffs_applied == len(diffs) > 30_000
    # ... ending at the simulator's closing book: its best prices and their sizes
    final = Book.of(snapshots[0])
    for diff in diffs:
        final.apply(diff)
    closing = book.state_after(tape, tape.order_count - 1)
    assert final.best() == (closing.bid_ticks * inst.tick_e8, closing.ask_ticks * inst.tick_e8)
    assert final.bids[final.best_bid] == closing.bid_steps * inst.step_e8
    assert final.asks[final.best_ask] == closing.ask_steps * inst.step_e8
