"""Metrics, the cost-aware P&L and the baseline gate, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trading_assets.lib.models import (
    Comparison,
    Metrics,
    beats_baselines,
    compare,
    hit_rate,
    information_coefficient,
    policy_pnl,
    position_pnl,
    rmse,
    trade_pnl,
)
from trading_assets.lib.models.metrics import buy_and_hold, ic_p_value, score

# Fees of 10 bp per side and no spread: a side costs 0.001, the round trip 0.002.
FEE, FREE_SPREAD = 10.0, 0.0
PRED = [0.005, -0.003, 0.001, 0.0, -0.004]  # positions +1, −1, 0 (below cost), 0, −1
RET = [0.02, 0.01, -0.03, 0.0, -0.01]
LAST = [0.0, 0.02, 0.01, -0.03, 0.0]  # RET shifted by one row: the previous horizon's return


def test_information_coefficient_is_the_rank_correlation():
    # Arrange: ranks PRED [5,2,4,3,1], RET [5,4,1,3,2]; Σd² = 0+4+9+0+1 = 14
    expected = 1 - 6 * 14 / (5 * (5**2 - 1))

    # Act
    ic = information_coefficient(PRED, RET)

    # Assert
    assert ic == pytest.approx(expected) == pytest.approx(0.3)


def test_information_coefficient_of_a_constant_forecast_is_zero():
    assert information_coefficient(np.zeros(5), RET) == 0.0


def test_hit_rate_ignores_zero_returns_and_counts_a_zero_forecast_as_a_miss():
    # Rows with a move: 0 (+,+ hit), 1 (−,+ miss), 2 (+,− miss), 4 (−,− hit) → 2 of 4
    assert hit_rate(PRED, RET) == 0.5
    # LAST signs 0,+,+,0 on those rows: only row 1 matches
    assert hit_rate(LAST, RET) == 0.25


def test_rmse():
    squared = 0.015**2 + 0.013**2 + 0.031**2 + 0.0**2 + 0.006**2
    assert rmse(PRED, RET) == pytest.approx(math.sqrt(squared / 5))


def test_the_policy_pays_a_round_trip_on_every_trade_and_skips_predictions_below_cost():
    # Arrange: positions +1, −1, 0, 0, −1: three trades, each in and out, 6 sides;
    # gross 0.02 − 0.01 + 0 + 0 + 0.01 (row 2's −3 % move is missed: 0.001 is below cost)
    expected = (0.02 - 0.01 + 0.01) - 3 * 0.002

    # Act
    pnl, sides = policy_pnl(PRED, RET, spread_bps=FREE_SPREAD, fee_bp=FEE)

    # Assert
    assert sides == 6
    assert pnl == pytest.approx(expected) == pytest.approx(0.014)


def test_the_spread_raises_the_bar_and_each_side_pays_half_of_it():
    # Arrange: a 10 bp spread makes the round trip 0.003: row 1's −0.003 no longer clears it.
    # Positions +1, 0, 0, 0, −1: two trades of 2 sides at 0.001 + 0.0005 each; gross 0.02 + 0.01
    expected = 0.03 - 2 * 0.003

    # Act
    pnl, sides = policy_pnl(PRED, RET, spread_bps=10.0, fee_bp=FEE)

    # Assert
    assert sides == 4
    assert pnl == pytest.approx(expected)


def test_each_trade_pays_the_round_trip_at_the_spread_of_its_own_row():
    # Arrange: long at row 0 (2 bp spread), long again at row 1 (100 bp), flat at row 2 (6 bp)
    position, realized, spread = [1.0, 1.0, 0.0], [0.01, 0.02, 0.05], [2.0, 100.0, 6.0]

    # Act
    pnl, sides = trade_pnl(position, realized, spread_bps=spread, fee_bp=FEE)

    # Assert: row 1 is a trade of its own, so its wide spread is paid; flat row 2 costs nothing
    assert sides == 4
    assert pnl == pytest.approx(0.03 - 2 * (0.001 + 0.0001) - 2 * (0.001 + 0.005))


def test_a_position_kept_over_several_horizons_pays_a_round_trip_every_horizon():
    # Arrange: long on three consecutive rows of one symbol. The sidecar settles its paper
    # position one horizon after opening it and reopens on the next decision, so each row is
    # a trade of its own; holding the position through (one side in total) is not what runs.
    pred, ret = [0.01, 0.01, 0.01], [0.01, 0.02, -0.005]

    # Act
    pnl, sides = policy_pnl(pred, ret, spread_bps=FREE_SPREAD, fee_bp=FEE)
    held_pnl, held_sides = position_pnl([1.0, 1.0, 1.0], ret, spread_bps=FREE_SPREAD, fee_bp=FEE)

    # Assert
    assert (pnl, sides) == (pytest.approx(0.025 - 3 * 0.002), 6)
    assert (held_pnl, held_sides) == (pytest.approx(0.025 - 0.001), 1)


def test_a_held_position_pays_each_change_at_the_spread_of_its_own_row():
    # Arrange: buy-and-hold's accounting: long, long, flat: the entry at row 0 (2 bp spread)
    # and the exit at row 2 (6 bp)
    position, realized, spread = [1.0, 1.0, 0.0], [0.01, 0.02, 0.05], [2.0, 100.0, 6.0]

    # Act
    pnl, sides = position_pnl(position, realized, spread_bps=spread, fee_bp=FEE)

    # Assert: holding on at row 1 changes nothing, so its wide spread costs nothing
    assert sides == 2
    assert pnl == pytest.approx(0.03 - (0.001 + 0.0001) - (0.001 + 0.0003))


def test_buy_and_hold_pays_one_side_per_symbol_and_earns_the_drift():
    # Arrange: two symbols, long on every row
    ret, symbol = [0.01, -0.02, 0.03, 0.01, 0.0], ["A", "B", "A", "B", "A"]

    # Act
    held = buy_and_hold(ret, symbol, spread_bps=FREE_SPREAD, fee_bp=FEE)

    # Assert: 0.03 gross less two entries; 2 sides over 5 rows; ups 3 of the 4 moves
    assert held.pnl == pytest.approx(0.03 - 2 * 0.001)
    assert (held.trades, held.turnover) == (2, pytest.approx(0.4))
    assert held.hit_rate == 0.75
    assert (held.ic, held.ic_p_value) == (0.0, 1.0) and math.isnan(held.rmse)


def test_turnover_counts_sides_per_pnl_row():
    # Arrange: a forecast that flips every row and one long on every row: four trades each,
    # 2 sides apiece over 4 rows; one below cost on every row never trades
    flipping, long = [0.01, -0.01, 0.01, -0.01], [0.01] * 4

    # Act
    flips = score(flipping, [0.0] * 4, spread_bps=FREE_SPREAD, fee_bp=FEE)
    stays = score(long, [0.0] * 4, spread_bps=FREE_SPREAD, fee_bp=FEE)
    idle = score([0.0001] * 4, [0.0] * 4, spread_bps=FREE_SPREAD, fee_bp=FEE)

    # Assert
    assert (flips.trades, flips.turnover) == (8, pytest.approx(2.0))
    assert flips.pnl == pytest.approx(-8 * 0.001)
    assert (stays.trades, stays.turnover, stays.pnl) == (8, pytest.approx(2.0), flips.pnl)
    assert (idle.trades, idle.turnover, idle.pnl) == (0, 0.0, 0.0)


def test_compare_scores_the_model_and_every_baseline_on_the_same_rows():
    # Act
    report = compare(PRED, RET, LAST, spread_bps=FREE_SPREAD, fee_bp=FEE)

    # Assert
    assert (report.rows, report.pnl_rows) == (5, 5)
    assert (report.fee_bp, report.spread_bps) == (FEE, FREE_SPREAD)
    assert report.model.pnl == pytest.approx(0.014)
    assert report.model.turnover == pytest.approx(6 / 5)
    zero = report.zero
    assert (zero.ic, zero.hit_rate, zero.pnl, zero.trades, zero.turnover) == (0, 0, 0, 0, 0)
    assert zero.rmse == pytest.approx(math.sqrt((4 + 1 + 9 + 0 + 1) * 1e-4 / 5))
    # LAST positions 0, +1, +1, −1, 0 by the same rule: three trades, 6 sides; gross 0.01 − 0.03
    assert report.last.pnl == pytest.approx(-0.02 - 3 * 0.002)
    assert report.last.trades == 6
    # Ranks by hand (ties averaged): LAST [2.5,5,4,1,2.5], RET [5,4,1,3,2]
    expected_ic = np.corrcoef([2.5, 5, 4, 1, 2.5], [5, 4, 1, 3, 2])[0, 1]
    assert report.last.ic == pytest.approx(expected_ic)
    assert report.buy_hold.pnl == pytest.approx(-0.01 - 0.001)  # held: one side in total
    assert set(report.baselines) == {"zero", "last", "buy_hold"}
    assert report.best_baseline_pnl == 0.0  # the zero baseline's
    flat = report.as_dict()
    assert flat["model_turnover"] == pytest.approx(1.2) and "buy_hold_pnl" in flat


def test_compare_trades_and_tests_significance_only_on_the_masked_rows():
    # Act: rows 0 and 2 only: long over 0.02, then flat (0.001 is below cost): one trade
    mask = [True, False, True, False, False]
    report = compare(PRED, RET, LAST, pnl_mask=mask, spread_bps=FREE_SPREAD, fee_bp=FEE)

    # Assert
    assert report.pnl_rows == 2
    assert report.model.pnl == pytest.approx(0.02 - 0.002)  # its round trip
    assert report.model.turnover == pytest.approx(1.0)
    assert report.model.ic == pytest.approx(0.3)  # the IC itself still uses every row
    assert report.model.ic_p_value == 1.0  # two rows cannot show anything


def noise_and_signal(rng: np.random.Generator, rows: int, strength: float):
    """A forecast and a realized return that follows it with ``strength`` (0: pure noise)."""
    forecast = rng.normal(size=rows)
    return forecast, strength * forecast + rng.normal(size=rows)


def test_the_ic_p_value_finds_a_planted_signal_and_is_uniform_on_noise():
    # Arrange
    rng = np.random.default_rng(11)

    # Act: a weak planted link (IC about 0.1) over 2,000 rows; 400 noise samples of 500 rows
    planted = ic_p_value(*noise_and_signal(rng, 2_000, strength=0.1))
    noise = np.array([ic_p_value(*noise_and_signal(rng, 500, 0.0)) for _ in range(400)])

    # Assert: the planted link is found, and noise passes a 5 % test about 5 % of the time
    # (binomial sd 1.1 %); small p-values are not more frequent than they should be
    assert planted < 1e-4
    assert 0.02 < np.mean(noise <= 0.05) < 0.09
    assert np.mean(noise <= 0.01) < 0.03
    assert 0.4 < np.median(noise) < 0.6


def test_overlapping_rows_would_overstate_significance_and_the_pnl_rows_do_not():
    # Arrange: 10 s sampling of 60 s labels (each a sum of six 10 s returns, so neighbours share
    # five of them) and an equally smooth unrelated feature; every sixth row does not overlap
    rng = np.random.default_rng(5)
    rows, overlap = 600, 6
    kernel = np.ones(overlap)

    def one_sample() -> tuple[float, float]:
        label = np.convolve(rng.normal(size=rows + overlap - 1), kernel, "valid")
        forecast = np.convolve(rng.normal(size=rows + overlap - 1), kernel, "valid")
        mask = np.arange(rows) % overlap == 0
        every_row = ic_p_value(forecast, label)
        pooled = score(forecast, label, pnl_mask=mask).ic_p_value
        return every_row, pooled

    # Act
    pairs = np.array([one_sample() for _ in range(300)])

    # Assert: on every row, noise looks significant far more often than 5 %; one row per
    # horizon keeps the test honest
    assert np.mean(pairs[:, 0] <= 0.05) > 0.15
    assert np.mean(pairs[:, 1] <= 0.05) < 0.09


def _comparison(model_ic: float, model_pnl: float, p_value: float = 0.001) -> Comparison:
    def metrics(ic: float, pnl: float, p: float = 0.5) -> Metrics:
        return Metrics(ic, p, 0.5, 0.01, pnl, trades=10, turnover=0.5)

    return Comparison(
        rows=100,
        pnl_rows=20,
        model=metrics(model_ic, model_pnl, p_value),
        zero=metrics(0.0, 0.0),
        last=metrics(0.03, -0.05),
        buy_hold=metrics(0.0, 0.004),
    )


def test_gate_requires_a_margin_over_the_best_baseline_on_each_chosen_metric():
    report = _comparison(model_ic=0.05, model_pnl=0.01)

    assert beats_baselines(report, ic_margin=0.01, pnl_margin=0.0)
    assert not beats_baselines(report, ic_margin=0.03, pnl_margin=0.0)  # 0.05 ≤ 0.03 + 0.03
    assert not beats_baselines(report, ic_margin=0.0, pnl_margin=0.007)  # ≤ buy & hold + 0.007
    assert beats_baselines(report, ic_margin=0.01, pnl_margin=None)
    assert not beats_baselines(_comparison(0.05, -0.01), ic_margin=0.0)  # loses to zero's P&L
    assert not beats_baselines(_comparison(0.05, 0.003), ic_margin=0.0)  # and to buy & hold's
    with pytest.raises(ValueError, match="margin"):
        beats_baselines(report, ic_margin=None, pnl_margin=None, max_ic_p_value=None)


def test_gate_requires_a_significant_ic():
    lucky = _comparison(model_ic=0.05, model_pnl=0.01, p_value=0.2)

    assert beats_baselines(lucky, ic_margin=0.0, pnl_margin=0.0, max_ic_p_value=None)
    assert not beats_baselines(lucky, ic_margin=0.0, pnl_margin=0.0)  # default bound 0.01
    assert beats_baselines(lucky, ic_margin=0.0, pnl_margin=0.0, max_ic_p_value=0.25)
    assert beats_baselines(_comparison(0.05, 0.01, p_value=0.01), 0.0, 0.0, max_ic_p_value=0.01)
    assert not beats_baselines(lucky, ic_margin=None, pnl_margin=None, max_ic_p_value=0.01)
