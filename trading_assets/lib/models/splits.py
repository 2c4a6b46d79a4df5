"""Purged, embargoed walk-forward splits: time-ordered folds; no training label sees the test.

Rows are ordered by ``event_time`` (several symbols may share a time; a time is never split across
folds). The time axis is cut into ``n_folds + 1`` blocks of about equal row count; fold ``k`` tests
on block ``k + 1``. Every row carries the end of its label horizon, ``label_end`` (≥ its time).

* Purge: a training row before the test fold is kept only if its label ended strictly before the
  first test time, so no training label overlaps the test period (``max(label_end) < test_start``).
* Embargo: a further gap of ``embargo`` between the last training label and the test fold
  (``max(label_end) + embargo < test_start``). Returns are serially correlated (volatility
  clusters, slow drifts), so rows whose labels end just before the test still share its regime;
  the gap keeps the score from crediting that. When rows after the test fold are allowed in
  training too (``train_after=True``, purged k-fold), they start only after the last test label
  has ended plus ``embargo``, because features with long look-back windows computed just after the
  test fold still reflect its prices.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_US = "datetime64[us]"


@dataclass(frozen=True)
class Fold:
    """One split: row indices (into the caller's arrays) to train and test on, and the test span."""

    number: int
    train: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]
    test_start: np.datetime64
    test_end: np.datetime64  # the last test row's time (inclusive)


def _as_us(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    return np.asarray(values).astype(_US).astype(np.int64)


def _block_edges(times_us: npt.NDArray[np.int64], n_blocks: int) -> npt.NDArray[np.int64]:
    """Block start times: equal row counts, moved to time boundaries (a time stays in one block)."""
    ordered = np.sort(times_us)
    cuts = np.linspace(0, ordered.size, n_blocks + 1).astype(np.int64)[1:-1]
    edges = np.unique(np.concatenate([[ordered[0]], ordered[cuts]]))
    if edges.size != n_blocks:
        raise ValueError(f"not enough distinct times for {n_blocks} time blocks")
    return edges


def purged_walk_forward(
    event_time: npt.ArrayLike,
    label_end: npt.ArrayLike,
    n_folds: int,
    embargo: dt.timedelta = dt.timedelta(0),
    train_after: bool = False,
) -> list[Fold]:
    """Folds in time order; ``event_time``/``label_end`` are datetime64 arrays of equal length."""
    if n_folds < 1:
        raise ValueError(f"need at least one fold, got {n_folds}")
    times, ends = _as_us(event_time), _as_us(label_end)
    if times.shape != ends.shape or times.ndim != 1:
        raise ValueError("event_time and label_end must be 1-d arrays of equal length")
    if times.size == 0:
        raise ValueError("no rows to split")
    if np.any(ends < times):
        raise ValueError("a label cannot end before its row's time")
    embargo_us = embargo // dt.timedelta(microseconds=1)
    edges = _block_edges(times, n_folds + 1)
    upper = np.append(edges[1:], np.iinfo(np.int64).max)
    folds = []
    for k in range(n_folds):
        start, stop = edges[k + 1], upper[k + 1]
        in_test = (times >= start) & (times < stop)
        test = np.flatnonzero(in_test)
        before = (times < start) & (ends + embargo_us < start)
        train_mask = before
        if train_after:
            resume = ends[test].max() + embargo_us
            train_mask = before | ((times >= stop) & (times > resume))
        folds.append(
            Fold(
                number=k,
                train=np.flatnonzero(train_mask),
                test=test,
                test_start=np.datetime64(int(start), "us"),
                test_end=np.datetime64(int(times[test].max()), "us"),
            )
        )
    return folds
