"""Metrics and the baseline gate on hand-made series, against values worked out by hand."""

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
    rmse,
    sign_strategy_pnl,
)

PRED = [0.5, -0.2, 0.1, 0.0, -0.4]
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
    squared = 0.48**2 + 0.21**2 + 0.13**2 + 0.0**2 + 0.39**2
    assert rmse(PRED, RET) == pytest.approx(math.sqrt(squared / 5))


def test_sign_strategy_pays_ten_bp_per_side_on_every_position_change():
    # Arrange: positions 1,−1,1,0,−1 from flat: sides 1+2+2+1+1 = 7; gross 0.02−0.01−0.03+0+0.01
    expected = (0.02 - 0.01 - 0.03 + 0.0 + 0.01) - 7 * 0.001

    # Act
    pnl, sides = sign_strategy_pnl(PRED, RET)

    # Assert
    assert sides == 7
    assert pnl == pytest.approx(expected) == pytest.approx(-0.017)


def test_sign_strategy_tracks_positions_per_symbol():
    # Arrange: A holds long over 0.01 and 0.03, B short over −0.02 and 0.01; one entry each
    pred, ret, symbol = [1.0, -1.0, 2.0, -3.0], [0.01, -0.02, 0.03, 0.01], ["A", "B", "A", "B"]

    # Act
    pnl, sides = sign_strategy_pnl(pred, ret, symbol)
    pooled_pnl, pooled_sides = sign_strategy_pnl(pred, ret)

    # Assert
    assert (pnl, sides) == (pytest.approx(0.04 + 0.01 - 0.002), 2)
    assert pooled_sides == 1 + 2 + 2 + 2  # as one series the position flips every row
    assert pooled_pnl < pnl


def test_compare_scores_model_and_both_baselines_on_the_same_rows():
    # Act
    report = compare(PRED, RET, LAST)

    # Assert
    assert (report.rows, report.pnl_rows) == (5, 5)
    assert report.model.pnl == pytest.approx(-0.017)
    zero = report.zero
    assert (zero.ic, zero.hit_rate, zero.pnl, zero.trades) == (0.0, 0.0, 0.0, 0)
    assert zero.rmse == pytest.approx(math.sqrt((4 + 1 + 9 + 0 + 1) * 1e-4 / 5))
    # LAST positions 0,1,1,−1,0: sides 0+1+0+2+1 = 4; gross 0.01−0.03 = −0.02
    assert report.last.pnl == pytest.approx(-0.02 - 4 * 0.001)
    assert report.last.trades == 4
    # Ranks by hand (ties averaged): LAST [2.5,5,4,1,2.5], RET [5,4,1,3,2]
    expected_ic = np.corrcoef([2.5, 5, 4, 1, 2.5], [5, 4, 1, 3, 2])[0, 1]
    assert report.last.ic == pytest.approx(expected_ic)


def test_compare_trades_only_on_the_masked_rows():
    # Act: rows 0 and 2 only: long 0.02 then long −0.03, one entry
    report = compare(PRED, RET, LAST, pnl_mask=[True, False, True, False, False])

    # Assert
    assert report.pnl_rows == 2
    assert report.model.pnl == pytest.approx(0.02 - 0.03 - 0.001)
    assert report.model.ic == pytest.approx(0.3)  # the other metrics still use every row


def _comparison(model_ic: float, model_pnl: float) -> Comparison:
    def metrics(ic: float, pnl: float) -> Metrics:
        return Metrics(ic=ic, hit_rate=0.5, rmse=0.01, pnl=pnl, trades=10)

    return Comparison(
        rows=100,
        pnl_rows=20,
        model=metrics(model_ic, model_pnl),
        zero=metrics(0.0, 0.0),
        last=metrics(0.03, -0.05),
    )


def test_gate_requires_a_margin_over_the_best_baseline_on_each_chosen_metric():
    report = _comparison(model_ic=0.05, model_pnl=0.01)

    assert beats_baselines(report, ic_margin=0.01, pnl_margin=0.0)
    assert not beats_baselines(report, ic_margin=0.03, pnl_margin=0.0)  # 0.05 ≤ 0.03 + 0.03
    assert not beats_baselines(report, ic_margin=0.0, pnl_margin=0.02)  # 0.01 ≤ 0 + 0.02
    assert beats_baselines(report, ic_margin=0.01, pnl_margin=None)
    assert not beats_baselines(_comparison(0.05, -0.01), ic_margin=0.0)  # loses to zero's P&L
    with pytest.raises(ValueError, match="margin"):
        beats_baselines(report, ic_margin=None, pnl_margin=None)
