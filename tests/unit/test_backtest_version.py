"""Which rows a version's backtest replays: those after its training data, from the training
frame and the newer rows, each with the last return the gate's baseline predicts."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from trading_assets.lib.backtest.version import LAST_RETURN, newest_rows, unseen_rows

pytestmark = pytest.mark.backtest
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def rows(minutes: list[int], x: list[float], label: list[float | None]) -> pl.DataFrame:
    times = [T0 + m * MINUTE for m in minutes]
    return pl.DataFrame({
        "instrument": "BINANCE:BTCUSDT", "event_timestamp": times, "x": x, "label": label,
        "label_end": [t + MINUTE for t in times],
    })  # fmt: skip


def test_only_rows_after_the_training_data_are_replayed_with_the_label_that_ended_at_them():
    frame = rows([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0], [0.01, -0.02, 0.03, None])

    unseen = unseen_rows(frame, data_end=T0 + MINUTE, label="label")

    assert unseen["x"].to_list() == [2.0, 3.0]
    assert unseen[LAST_RETURN].to_list() == [-0.02, 0.03]  # the labels that ended at 2 and 3


def test_newer_rows_win_and_a_frame_without_the_features_is_left_out():
    training = rows([0, 1], [0.0, 1.0], [0.01, 0.02])
    newer = rows([1, 2], [10.0, 20.0], [0.02, 0.03])
    lacking = rows([3], [30.0], [0.04]).drop("x")

    combined = newest_rows([training, newer, lacking], ["x"])

    assert combined["x"].to_list() == [0.0, 10.0, 20.0]
