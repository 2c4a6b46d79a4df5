"""The rebuild's book keeps its best prices as levels come and go, and a report names a crossed
book and a snapshot that differs from the rebuilt one."""

from __future__ import annotations

import random

import pytest

from trading_assets.lib.book.lines import PERIODIC, SYNC
from trading_assets.lib.book.rebuild import Book, LevelDiff, LevelSnapshot, rebuild

pytestmark = pytest.mark.backtest


def test_the_best_prices_follow_every_diff():
    # Arrange: a random walk of levels set and removed on both sides, near the top
    rng = random.Random(7)
    book = Book.of(LevelSnapshot(1, SYNC, 0, 0, [100, 99], [5, 5], [101, 102], [5, 5]))
    for update_id in range(1, 3000):
        prices = [rng.randrange(90, 112) for _ in range(rng.randrange(0, 4))]
        qtys = [rng.choice([0, 0, 1, 7]) for _ in prices]
        asks = [rng.randrange(90, 112) for _ in range(rng.randrange(0, 4))]
        ask_qtys = [rng.choice([0, 0, 1, 7]) for _ in asks]

        # Act
        book.apply(LevelDiff(1, update_id, update_id, update_id, prices, qtys, asks, ask_qtys))

        # Assert: the kept best equals the extreme of what the side holds
        assert book.best() == (max(book.bids, default=None), min(book.asks, default=None))


def test_a_report_names_a_crossed_book_and_a_differing_snapshot():
    # Arrange: a diff puts a bid above the best ask; a periodic snapshot misses a level
    sync = LevelSnapshot(1, SYNC, 10, 10, [100], [5], [101], [5])
    crossing = LevelDiff(1, 11, 11, 11, [102], [1], [], [])
    uncrossing = LevelDiff(1, 12, 12, 12, [102], [0], [], [])
    wrong = LevelSnapshot(1, PERIODIC, 12, 12, [100, 98], [5, 1], [101], [5])

    # Act
    report = rebuild([crossing, uncrossing], [sync, wrong])

    # Assert
    assert (report.crossed, report.crossed_at) == (1, [11])
    (mismatch,) = report.mismatches
    assert mismatch.last_update_id == 12 and "lacks [(98, 1)]" in mismatch.what
    assert not report.breaks and not report.ok
