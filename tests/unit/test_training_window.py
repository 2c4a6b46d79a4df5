"""The training set's window: the last N calendar days of exported history."""

from __future__ import annotations

import datetime as dt

import pytest

from trading_assets.lib.feature_store.training import newest_days

NEWEST = dt.date(2024, 3, 31)


def test_the_window_counts_calendar_days_back_from_the_newest_day():
    # Arrange: March with a five-day hole (10th to 14th)
    days = {dt.date(2024, 3, d) for d in range(1, 32) if not 10 <= d <= 14}

    # Act
    week, across_the_hole = newest_days(days, 7), newest_days(days, 20)

    # Assert
    assert week == {NEWEST - dt.timedelta(days=n) for n in range(7)}
    # 20 calendar days reach back to the 12th: the hole shortens the window, not widens it.
    assert min(across_the_hole) == dt.date(2024, 3, 15) and len(across_the_hole) == 17
    assert newest_days(days, 365) == days


def test_an_empty_history_or_a_window_under_a_day_is_handled_plainly():
    assert newest_days(set(), 30) == set()
    with pytest.raises(ValueError, match="at least 1"):
        newest_days({NEWEST}, 0)
