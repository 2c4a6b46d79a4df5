"""Walk-forward reports on disk: today's round-trip, and older files still load but pass no gate."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from trading_assets.lib.models import beats_baselines, compare
from trading_assets.lib.models.artifacts import report_from_dict, report_to_dict
from trading_assets.lib.models.evaluation import FoldResult, WalkForwardReport

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def report() -> WalkForwardReport:
    pooled = compare([0.005, -0.003, 0.001], [0.02, 0.01, -0.03], [0.0, 0.02, 0.01], spread_bps=2.0)
    fold = FoldResult(0, 10, 3, START, START + dt.timedelta(minutes=3), pooled)
    return WalkForwardReport((fold,), pooled, fee_bp=10.0, embargo_s=60.0)


def test_a_report_round_trips_with_its_costs_and_every_baseline():
    original = report()

    loaded = report_from_dict(report_to_dict(original))

    pooled = loaded.pooled.as_dict()
    assert pooled == pytest.approx(original.pooled.as_dict(), nan_ok=True)
    assert loaded.pooled.spread_bps == 2.0 and loaded.pooled.buy_hold.trades == 1
    fold = loaded.folds[0].comparison.as_dict()
    assert fold == pytest.approx(original.folds[0].comparison.as_dict(), nan_ok=True)


def test_a_report_written_before_costs_were_scored_loads_but_passes_no_gate():
    # Arrange: the older layout: no buy-and-hold, no p-value, no turnover, no costs
    written = report_to_dict(report())
    for comparison in (written["pooled"], written["folds"][0]["comparison"]):
        for key in ("buy_hold", "fee_bp", "spread_bps"):
            del comparison[key]
        for forecast in ("model", "zero", "last"):
            del comparison[forecast]["ic_p_value"], comparison[forecast]["turnover"]

    # Act
    loaded = report_from_dict(written).pooled

    # Assert
    assert math.isnan(loaded.model.ic_p_value) and math.isnan(loaded.buy_hold.pnl)
    assert not beats_baselines(loaded, ic_margin=-1.0, pnl_margin=None)
