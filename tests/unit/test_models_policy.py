"""The trading rule: a predicted return is traded only when it pays fees and the spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trading_assets.lib.models.policy import (
    ASSUMED_SPREAD_BPS,
    FEE_BP,
    known_spread,
    known_spreads,
    round_trip_cost,
    side_cost,
    target_position,
    target_positions,
)


def test_a_round_trip_pays_the_fee_and_half_the_spread_on_each_side():
    # Arrange: 10 bp fee per side, 4 bp spread: each side 10 + 2 bp, the round trip 24 bp
    fee_bp, spread_bps = 10.0, 4.0

    # Act
    one_side = side_cost(spread_bps, fee_bp)
    both = round_trip_cost(spread_bps, fee_bp)

    # Assert
    assert one_side == pytest.approx(0.0012)
    assert both == pytest.approx(0.0024) == pytest.approx(2 * one_side)


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (0.0025, 1.0),  # clears the 24 bp round trip
        (-0.0025, -1.0),
        (0.0023, 0.0),  # a real view that does not pay for itself
        (-0.0023, 0.0),
        (0.0, 0.0),
        (math.nan, 0.0),  # no number, no trade
    ],
)
def test_only_a_prediction_beyond_the_round_trip_takes_a_position(predicted, expected):
    assert target_position(predicted, spread_bps=4.0, fee_bp=10.0) == expected


def test_a_wider_spread_or_a_higher_fee_raises_the_bar():
    predicted = 0.0022  # clears 10 bp fees at a 1 bp spread (21 bp)

    assert target_position(predicted, spread_bps=1.0, fee_bp=10.0) == 1.0
    assert target_position(predicted, spread_bps=3.0, fee_bp=10.0) == 0.0
    assert target_position(predicted, spread_bps=1.0, fee_bp=11.0) == 0.0
    assert target_position(predicted, spread_bps=1.0, fee_bp=0.0) == 1.0


def test_the_scalar_and_vector_rules_agree_on_every_row():
    # Arrange: random predictions and spreads, plus rows exactly on the boundary (the rule
    # is strict there), at a few fees
    rng = np.random.default_rng(7)
    predicted = rng.normal(scale=0.003, size=20_000)
    spread = rng.exponential(scale=3.0, size=predicted.size)
    on_the_edge = rng.random(predicted.size) < 0.05
    for fee_bp in (0.0, 2.5, FEE_BP):
        edge = np.where(rng.random(predicted.size) < 0.5, 1.0, -1.0)
        predicted[on_the_edge] = edge[on_the_edge] * (2.0 * fee_bp + spread[on_the_edge]) * 1e-4

        # Act
        vector = target_positions(predicted, spread, fee_bp)
        scalar = [target_position(p, s, fee_bp) for p, s in zip(predicted, spread, strict=True)]

        # Assert: identical, and each outcome occurs
        assert vector.tolist() == scalar
        assert {-1.0, 0.0, 1.0} <= set(scalar)
        assert not vector[on_the_edge].any()


def test_a_missing_or_unusable_spread_falls_back_to_the_assumed_one():
    assert known_spread(2.5) == 2.5
    assert known_spread(0.0) == 0.0
    for unusable in (None, math.nan, -1.0, math.inf):
        assert known_spread(unusable) == ASSUMED_SPREAD_BPS
        assert known_spread(unusable, assumed_bps=3.0) == 3.0
    rows = known_spreads([2.5, math.nan, -1.0, 0.0], assumed_bps=3.0)
    assert rows.tolist() == [2.5, 3.0, 3.0, 0.0]
