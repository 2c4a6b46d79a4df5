"""Purged, embargoed walk-forward splits on the real time axis of two symbols' 1 m klines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trading_assets.lib.models import purged_walk_forward

HORIZON = dt.timedelta(minutes=5)
EMBARGO = dt.timedelta(minutes=30)
FILES = ("BTCUSDT_1m_2019-10-15_2019-12-15.csv.gz",)  # has maintenance gaps


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> pl.DataFrame:
    """The real 2019 minute axis (with gaps) for two symbols, as training-frame time columns."""
    klines = pl.read_csv(shared_data / "binance" / "klines" / "spot" / FILES[0])
    times = pl.from_epoch(klines["open_time"] + 60_000, time_unit="ms").cast(pl.Datetime("us"))
    one = pl.DataFrame({"event_timestamp": times}).with_columns(
        label_end=pl.col("event_timestamp") + HORIZON
    )
    # Two symbols sharing every timestamp, shuffled: the splitter must not rely on row order.
    both = pl.concat([one.with_columns(symbol=pl.lit(s)) for s in ("BTCUSDT", "ETHUSDT")])
    return both.sample(fraction=1.0, shuffle=True, seed=7)


def _times(rows: pl.DataFrame, column: str) -> np.ndarray:
    return rows[column].to_numpy()


def test_walk_forward_folds_are_purged_ordered_and_cover_the_data_after_the_first_block(rows):
    # Arrange
    t, end = _times(rows, "event_timestamp"), _times(rows, "label_end")

    # Act
    folds = purged_walk_forward(t, end, n_folds=5, embargo=EMBARGO)

    # Assert
    assert len(folds) == 5
    for fold in folds:
        test_start = t[fold.test].min()
        assert end[fold.train].max() < test_start  # purge: every training label ended before
        assert t[fold.train].max() < test_start  # walk-forward: only the past is trained on
        # Embargo: the last training label ends more than the embargo before the test starts.
        assert end[fold.train].max() + np.timedelta64(EMBARGO) < test_start
        # Only rows whose labels reach into the embargo or the test fold were dropped.
        before = t < test_start
        kept = before & (end + np.timedelta64(EMBARGO) < test_start)
        assert fold.train.size == int(kept.sum())
        assert int((before & (end >= test_start)).sum()) > 0  # the purge dropped rows
        assert int((before & (end < test_start) & ~kept).sum()) > 0  # and so did the embargo
        # A timestamp is never split: both symbols' rows of a test time are in the test fold.
        assert set(t[fold.test]).isdisjoint(set(t[fold.train]))
    tested = np.concatenate([f.test for f in folds])
    assert np.unique(tested).size == tested.size  # each row tested at most once
    starts = [t[f.test].min() for f in folds]
    ends = [t[f.test].max() for f in folds]
    assert all(e < s for e, s in zip(ends[:-1], starts[1:], strict=True))  # folds in time order
    # Everything from the first test time on is tested: the folds tile the rest of the data.
    assert tested.size == int((t >= starts[0]).sum())
    assert folds[0].train.size > 0  # the first block is training only
    sizes = [f.test.size for f in folds]
    assert max(sizes) - min(sizes) <= 2  # blocks of about equal row count (two symbols per time)


def test_training_after_a_test_fold_resumes_only_after_its_labels_and_the_embargo(rows):
    # Arrange
    t, end = _times(rows, "event_timestamp"), _times(rows, "label_end")

    # Act
    folds = purged_walk_forward(t, end, n_folds=4, embargo=EMBARGO, train_after=True)

    # Assert
    for fold in folds:
        test_start, test_last = t[fold.test].min(), t[fold.test].max()
        train_t, train_end = t[fold.train], end[fold.train]
        earlier = train_t < test_start
        assert train_end[earlier].max() < test_start  # purge before
        later = train_t[~earlier]
        if fold.number < len(folds) - 1:
            # Embargo: the first training row after the test fold is past its last label + gap.
            resume = end[fold.test].max() + np.timedelta64(EMBARGO)
            assert later.min() > resume
            embargoed = (t > test_last) & (t <= resume)
            assert (
                embargoed.sum() > 0
                and np.intersect1d(np.flatnonzero(embargoed), fold.train).size == 0
            )
        else:
            assert later.size == 0  # nothing after the last fold


def test_a_label_ending_before_its_row_is_rejected():
    # Arrange
    t = np.array(["2021-01-01T00:00", "2021-01-01T00:01"], dtype="datetime64[us]")

    # Act / Assert
    with pytest.raises(ValueError, match="label cannot end"):
        purged_walk_forward(t, t - np.timedelta64(1, "s"), n_folds=1)
