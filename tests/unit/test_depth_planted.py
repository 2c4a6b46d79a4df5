"""Ground truth for the depth group: the simulator's book leans toward its planted drift (the
best bid's size grows in an up episode, the best ask's in a down one), so on a synthetic day with
the edge the L2 microprice and the order-flow imbalance foretell the next minute's return, and
on the same day without the edge nothing does."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streaming.simulator.synthetic import SyntheticMarket
from tests.permutation import circular_shift_test
from tests.unit.test_book_synthetic_day import synthetic_day_lines
from trading_assets.lib.book.rebuild import levels_of
from trading_assets.lib.features.depth import depth_rows

pytestmark = pytest.mark.backtest
DAY = dt.date(2024, 5, 2)
HORIZON_US = 60_000_000
FEATURES = ("l2_microprice_dev", "ofi_60s", "depth_imb_5")


def correlations(edge: float) -> dict[str, tuple[float, float]]:
    """Each feature's correlation with the next minute's log return of the mid, and its p."""
    tape, diffs, snapshots = synthetic_day_lines(SyntheticMarket(seed=5, edge=edge), "BTCUSDT", DAY)
    rows = depth_rows("BINANCE:BTCUSDT", [levels_of(d) for d in diffs],
                      [levels_of(s) for s in snapshots])  # fmt: skip
    at = np.array([row.event_timestamp_us for row in rows])
    keep = at + HORIZON_US <= tape.order_time_us[-1]
    now = np.searchsorted(tape.order_time_us, at[keep], side="right") - 1
    later = np.searchsorted(tape.order_time_us, at[keep] + HORIZON_US, side="right") - 1
    mid = tape.order_bid_ticks.astype(float) + 0.5  # in ticks: the ask is one above the bid
    forward = np.log(mid[later]) - np.log(mid[now])
    found = {}
    for name in FEATURES:
        values = np.array([rows[i].values[name] for i in np.flatnonzero(keep)], dtype=float)
        known = ~np.isnan(values)
        found[name] = circular_shift_test(values[known], forward[known], min_lag=300, rounds=199)
    return found


def test_the_depth_features_find_the_planted_lean_and_nothing_without_it():
    planted, none = correlations(edge=1.0), correlations(edge=0.0)

    microprice_r, microprice_p = planted["l2_microprice_dev"]
    flow_r, flow_p = planted["ofi_60s"]
    assert microprice_r > 0.3 and microprice_p <= 0.01, planted
    assert flow_r > 0.05 and flow_p <= 0.01, planted
    assert all(abs(r) < 0.05 for r, _ in none.values()), none
