"""Risk engine: Kelly sizing, every circuit breaker, and every state transition with recovery."""

from __future__ import annotations

import itertools
import logging
import math

import pytest

from trading_assets.lib.models.policy import ASSUMED_SPREAD_BPS
from trading_assets.lib.risk import (
    RiskEngine,
    RiskLimits,
    RiskState,
    kelly_stake,
    position_fraction,
    win_probability,
)

S = 1_000_000_000
T0 = 1_709_294_400 * S
CALM_VOL = 0.001
# Per side of each unit of notional when no spread is given: the default fee, 10 bp, and half
# the trading rule's assumed spread of 1 bp.
SIDE = 0.00105


def assess(engine: RiskEngine, now_ns: int, symbol: str = "BTCUSDT", signal: float = 1.0,
           confidence: float = 1.0, level: int = 1, volatility: float = CALM_VOL):  # fmt: skip
    return engine.assess(symbol, now_ns, signal, confidence, level, volatility)


def states(engine: RiskEngine) -> list[tuple[RiskState, RiskState]]:
    return [(t.from_state, t.to_state) for t in engine.transitions]


@pytest.mark.parametrize(("p", "b"), [(0.55, 1.0), (0.7, 1.0), (0.45, 2.0), (0.6, 0.8)])
def test_kelly_stake_maximises_expected_log_growth(p, b):
    def growth(f: float) -> float:
        return p * math.log1p(b * f) + (1 - p) * math.log1p(-f)

    stake = kelly_stake(p, b)

    grid = [i / 1000 for i in range(999)]
    best = max(grid, key=growth)
    assert abs(stake - best) <= 1e-3
    assert 0 < stake < 1


def test_no_edge_or_an_edge_below_the_payoff_stakes_nothing():
    assert position_fraction(0.0, 1.0, 0.25, 1.0, 0.25) == 0.0
    assert position_fraction(0.8, 0.0, 0.25, 1.0, 0.25) == 0.0
    assert kelly_stake(win_probability(0.2, 1.0), payoff_ratio=0.5) == 0.0  # p = 0.6 < 2/3
    assert position_fraction(math.nan, 1.0, 0.25, 1.0, 0.25) == 0.0


def test_quarter_kelly_follows_the_signal_and_is_capped_at_a_quarter_of_equity():
    signal, confidence = -0.6, 0.5

    size = position_fraction(signal, confidence, kelly_fraction=0.25, payoff_ratio=1.0, cap=0.25)
    capped = position_fraction(0.9, 1.0, kelly_fraction=0.5, payoff_ratio=1.0, cap=0.25)

    # With b = 1, f* = 2p − 1 = |signal| · confidence.
    assert size == pytest.approx(-0.25 * abs(signal) * confidence)
    assert 0.5 * kelly_stake(win_probability(0.9, 1.0), 1.0) > 0.25 and capped == 0.25


def test_an_active_engine_trades_and_opens_a_paper_position():
    engine = RiskEngine()

    decision = assess(engine, T0, signal=0.8, confidence=0.5)

    assert decision.should_trade and decision.state is RiskState.ACTIVE
    assert decision.size_fraction == pytest.approx(0.25 * 0.8 * 0.5)
    assert engine.positions["BTCUSDT"].notional == pytest.approx(decision.size_fraction)
    assert 0.0 <= decision.risk_score <= 1.0


def test_a_reduced_stake_opens_and_settles_a_position_of_that_size():
    full, canary = RiskEngine(), RiskEngine()

    whole = full.assess("BTCUSDT", T0, 0.8, 0.5, 1, CALM_VOL, price=100.0)
    half = canary.assess("BTCUSDT", T0, 0.8, 0.5, 1, CALM_VOL, price=100.0, size_scale=0.5)
    full_pnl = full.settle("BTCUSDT", T0 + 60 * S, 101.0)
    canary_pnl = canary.settle("BTCUSDT", T0 + 60 * S, 101.0)

    assert half.should_trade and half.size_fraction == pytest.approx(0.5 * whole.size_fraction)
    assert "size × 0.5" in half.reasons
    assert canary_pnl == pytest.approx(0.5 * full_pnl) and full_pnl > 0
    assert canary.equity - 1.0 == pytest.approx(0.5 * (full.equity - 1.0))


@pytest.mark.parametrize("level", [4, 5])
def test_stale_data_blocks_trading(level):
    engine = RiskEngine()

    decision = assess(engine, T0, level=level)
    fresh = assess(engine, T0 + S, level=3)

    assert not decision.should_trade and decision.size_fraction == 0.0
    assert f"fallback level {level} > 3" in decision.reasons[0]
    assert decision.risk_score == pytest.approx((level - 1) / 4)
    assert fresh.should_trade
    assert engine.counters["blocked_stale_data"] == 1


def test_volatility_spike_blocks_the_symbol_and_reduces_until_it_has_passed():
    limits = RiskLimits(vol_min_samples=10, spike_hold_s=60)
    engine = RiskEngine(limits)
    for k in range(10):
        assess(engine, T0 + k * S)

    spike = assess(engine, T0 + 10 * S, volatility=CALM_VOL * 5)
    other = assess(engine, T0 + 11 * S, symbol="ETHUSDT")
    calm = assess(engine, T0 + 80 * S, symbol="ETHUSDT")

    assert not spike.should_trade and "volatility 5.0× its baseline" in spike.reasons[0]
    assert spike.risk_score == 1.0  # (5 − 1) / (3 − 1) is past the spike
    assert other.state is RiskState.REDUCING and other.should_trade
    assert other.size_fraction == pytest.approx(0.25 * limits.reducing_scale)
    assert calm.state is RiskState.ACTIVE and calm.size_fraction == pytest.approx(0.25)
    assert states(engine) == [
        (RiskState.ACTIVE, RiskState.REDUCING),
        (RiskState.REDUCING, RiskState.ACTIVE),
    ]


def test_a_quiet_first_minute_does_not_make_every_later_one_a_spike():
    """A sidecar that starts in a still minute reads rv_60s = 0 once; the baseline is the mean of
    its readings, not that first one, so the usual volatility afterwards is no spike."""
    limits = RiskLimits(vol_min_samples=10)
    engine = RiskEngine(limits)
    assess(engine, T0, volatility=0.0)
    for k in range(1, 10):
        assess(engine, T0 + k * S)

    usual = assess(engine, T0 + 10 * S)

    assert usual.should_trade, usual.reasons
    assert engine._baselines["BTCUSDT"].mean == pytest.approx(CALM_VOL * 10 / 11, rel=1e-3)


def test_unknown_volatility_is_not_traded():
    decision = assess(RiskEngine(), T0, volatility=math.nan)

    assert not decision.should_trade and "unusable" in decision.reasons[0]


def test_drawdown_reduces_then_halts_and_recovers_after_the_configured_period():
    engine = RiskEngine(RiskLimits(reducing_scale=1.0, halt_recovery_s=600))
    expected_equity, seen = 1.0, []

    for k in range(3):  # each position loses half its underlying
        now = T0 + k * S
        decision = assess(engine, now)
        expected_equity *= 1 + decision.size_fraction * (-0.5 - 2 * SIDE)  # move, in and out
        engine.record_return("BTCUSDT", now + S // 2, -0.5)
        seen.append(engine.state)
    halted = assess(engine, T0 + 10 * S)
    still_halted = assess(engine, T0 + 500 * S)
    recovered = assess(engine, T0 + 700 * S)

    assert engine.equity == pytest.approx(expected_equity)
    # Drawdowns 12.6 %, 23.5 %, 33.1 %
    assert seen == [RiskState.REDUCING, RiskState.REDUCING, RiskState.HALTED]
    assert not halted.should_trade and halted.risk_score == 1.0
    assert not still_halted.should_trade and still_halted.state is RiskState.HALTED
    assert recovered.should_trade and recovered.state is RiskState.ACTIVE
    assert engine.peak_equity == pytest.approx(expected_equity)  # high-water mark rebased
    assert states(engine) == [
        (RiskState.ACTIVE, RiskState.REDUCING),
        (RiskState.REDUCING, RiskState.HALTED),
        (RiskState.HALTED, RiskState.ACTIVE),
    ]
    assert f"drawdown {1 - expected_equity:.1%} ≥ 25%" in engine.transitions[1].reason
    assert engine.counters["halts"] == 1 and engine.counters["halt_recoveries"] == 1


def test_without_a_recovery_period_only_a_manual_reset_ends_a_halt():
    engine = RiskEngine(RiskLimits(halt_recovery_s=None))
    assess(engine, T0)
    engine.record_return("BTCUSDT", T0 + S, -1.0)  # a quarter of equity lost: 25 %

    day_later = assess(engine, T0 + 86_400 * S)
    engine.reset(T0 + 86_401 * S, "operator checked the feed")
    after_reset = assess(engine, T0 + 86_402 * S)

    assert not day_later.should_trade and day_later.state is RiskState.HALTED
    assert after_reset.should_trade and after_reset.state is RiskState.ACTIVE
    assert engine.transitions[-1].reason == "operator checked the feed"


def test_consecutive_losses_start_a_cooldown_and_a_win_ends_a_streak():
    limits = RiskLimits(max_consecutive_losses=3, loss_cooldown_s=120)
    engine = RiskEngine(limits)

    def trade_and_settle(now: int, underlying_return: float) -> None:
        assess(engine, now, signal=0.1, confidence=0.5)
        engine.record_return("BTCUSDT", now + S // 2, underlying_return)

    trade_and_settle(T0, -0.001)
    trade_and_settle(T0 + S, -0.001)
    trade_and_settle(T0 + 2 * S, 0.01)  # the win (after fees) resets the streak
    streak_after_win = engine.consecutive_losses
    for k in range(3, 6):
        trade_and_settle(T0 + k * S, -0.001)
    cooling = assess(engine, T0 + 60 * S)
    after = assess(engine, T0 + 200 * S)

    assert streak_after_win == 0
    assert not cooling.should_trade and cooling.state is RiskState.REDUCING
    assert "cooling down after 3 losses" in cooling.reasons[0] and cooling.risk_score == 1.0
    assert after.should_trade and after.state is RiskState.ACTIVE
    assert engine.counters["cooldowns"] == 1 and engine.counters["losses"] == 5


def test_a_short_loses_when_the_underlying_rises():
    engine = RiskEngine()
    decision = assess(engine, T0, signal=-1.0)

    pnl = engine.record_return("BTCUSDT", T0 + S, 0.01)

    assert decision.size_fraction == pytest.approx(-0.25)
    assert pnl == pytest.approx(-0.25 * 0.01 - 2 * 0.25 * SIDE) and engine.consecutive_losses == 1
    assert engine.record_return("BTCUSDT", T0 + 2 * S, 0.01) == 0.0  # already settled


def test_gross_exposure_caps_the_next_position_and_tiny_sizes_are_skipped():
    engine = RiskEngine(RiskLimits(max_gross_exposure=0.3))

    first = assess(engine, T0, symbol="BTCUSDT")
    second = assess(engine, T0 + S, symbol="ETHUSDT")
    tiny = assess(engine, T0 + 2 * S, symbol="SOLUSDT", signal=0.001, confidence=0.5)

    assert first.size_fraction == pytest.approx(0.25)
    assert second.size_fraction == pytest.approx(0.05)
    assert "gross exposure cap" in second.reasons[-1]
    assert not tiny.should_trade and "size 0.0000 < 0.001" in tiny.reasons[0]
    assert engine.snapshot().gross_exposure == pytest.approx(0.3)


def test_transitions_are_logged_and_exposed_with_counters(caplog):
    engine = RiskEngine(RiskLimits(halt_recovery_s=None))

    with caplog.at_level(logging.INFO, logger="trading_assets.lib.risk.engine"):
        assess(engine, T0)
        engine.record_return("BTCUSDT", T0 + S, -1.0)
        engine.reset(T0 + 2 * S)

    snapshot = engine.snapshot()
    assert [(t.from_state, t.to_state) for t in snapshot.transitions] == [
        (RiskState.ACTIVE, RiskState.HALTED),
        (RiskState.HALTED, RiskState.ACTIVE),
    ]
    assert snapshot.transitions[0].time_ns == T0 + S
    assert snapshot.counters["decisions"] == 1 and snapshot.counters["trades"] == 1
    assert snapshot.state is RiskState.ACTIVE and snapshot.drawdown == 0.0
    logged = [r.getMessage() for r in caplog.records]
    assert any("ACTIVE → HALTED" in m for m in logged)
    assert any("HALTED → ACTIVE: manual reset" in m for m in logged)


def test_limits_are_validated():
    with pytest.raises(ValueError, match="reduce_drawdown"):
        RiskLimits(reduce_drawdown=0.3)
    with pytest.raises(ValueError, match="kelly_fraction"):
        RiskLimits(kelly_fraction=1.5)
    with pytest.raises(ValueError, match="fee_bp"):
        RiskLimits(fee_bp=-1.0)


def test_a_re_sized_position_books_each_size_over_the_time_it_was_held():
    # Arrange: long at 100, re-sized (smaller) at 110, then reversed short at 121
    engine = RiskEngine()
    first = engine.assess("BTCUSDT", T0, 0.8, 1.0, 1, CALM_VOL, price=100.0)
    second = engine.assess("BTCUSDT", T0 + S, 0.4, 1.0, 1, CALM_VOL, price=110.0)
    third = engine.assess("BTCUSDT", T0 + 2 * S, -0.4, 1.0, 1, CALM_VOL, price=121.0)
    held = engine.positions["BTCUSDT"]

    # Act: the holding period is over; settle at 108.9 (−10 % from the short's entry)
    pnl = engine.settle("BTCUSDT", T0 + 60 * S, 108.9)

    # Assert: +10 % on the first size, +10 % on the second, +10 % on the short; fees on the
    # entry, on each change of size and on the exit
    sizes = [0.0, first.size_fraction, second.size_fraction, third.size_fraction, 0.0]
    fees = SIDE * sum(abs(b - a) for a, b in itertools.pairwise(sizes))
    expected = (first.size_fraction + second.size_fraction - third.size_fraction) * 0.1 - fees
    assert first.size_fraction > second.size_fraction > 0 > third.size_fraction
    assert held.opened_ns == T0  # a re-size keeps the holding period's start
    assert pnl == pytest.approx(expected)
    assert engine.equity == pytest.approx(1.0 + expected)
    assert engine.counters["wins"] == 1 and engine.counters["losses"] == 0
    assert engine.settle("BTCUSDT", T0 + 61 * S, 50.0) == 0.0  # settled once, nothing left


def test_trading_every_tick_settles_the_symbol_once_at_its_horizon():
    # Arrange: the sidecar's rhythm, a trading decision every half second for a minute while
    # the price falls 1 % per tick, all at the same size
    engine = RiskEngine()
    prices = [100.0 * 0.99**tick for tick in range(121)]
    sizes = [
        engine.assess(
            "BTCUSDT", T0 + tick * S // 2, 1.0, 1.0, 1, CALM_VOL, price=price
        ).size_fraction
        for tick, price in enumerate(prices[:-1])
    ]

    # Act
    pnl = engine.settle("BTCUSDT", T0 + 60 * S, prices[-1])

    # Assert: every tick's size lost 1 % of its notional exactly once; holding the same size
    # paid no fee, only the entry and the exit did; one loss in the streak
    assert len(set(sizes)) == 1
    assert pnl == pytest.approx(-0.01 * sizes[0] * 120 - 2 * SIDE * sizes[0])
    assert engine.equity == pytest.approx(1.0 + pnl)
    assert engine.consecutive_losses == 1 and engine.counters["losses"] == 1


def test_a_flat_target_is_not_traded_and_a_long_or_short_one_sets_the_direction():
    engine = RiskEngine()

    flat = engine.assess("BTCUSDT", T0, 0.8, 1.0, 1, CALM_VOL, target=0.0)
    short = engine.assess("ETHUSDT", T0, -0.8, 1.0, 1, CALM_VOL, target=-1.0)
    long = engine.assess("SOLUSDT", T0, 0.8, 1.0, 1, CALM_VOL, target=1.0)

    assert not flat.should_trade and flat.size_fraction == 0.0
    assert "round-trip cost" in flat.reasons[0]
    assert "BTCUSDT" not in engine.positions and engine.counters["blocked_below_cost"] == 1
    assert short.should_trade and short.size_fraction == pytest.approx(-0.2)
    assert long.should_trade and long.size_fraction == pytest.approx(0.2)


def test_breakers_still_block_what_the_rule_would_trade():
    engine = RiskEngine()

    stale = engine.assess("BTCUSDT", T0, 0.8, 1.0, 5, CALM_VOL, target=1.0)
    tiny = engine.assess("BTCUSDT", T0, 0.001, 0.5, 1, CALM_VOL, target=1.0)

    assert not stale.should_trade and "fallback level 5" in stale.reasons[0]
    assert not tiny.should_trade and "< 0.001" in tiny.reasons[0]


def test_each_side_pays_the_fee_and_half_the_spread_it_was_opened_at():
    # Arrange: 10 bp fee, a 4 bp spread: 12 bp per side of a quarter of equity
    engine = RiskEngine()
    free = RiskEngine(RiskLimits(fee_bp=0.0))
    for each in (engine, free):
        each.assess("BTCUSDT", T0, 1.0, 1.0, 1, CALM_VOL, price=100.0, spread_bps=4.0)

    # Act: the price has not moved
    pnl = engine.settle("BTCUSDT", T0 + 60 * S, 100.0)
    spread_only = free.settle("BTCUSDT", T0 + 60 * S, 100.0)

    # Assert
    assert pnl == pytest.approx(-2 * 0.25 * 0.0012)
    assert spread_only == pytest.approx(-2 * 0.25 * 0.0002)
    assert engine.equity == pytest.approx(1.0 + pnl) and engine.consecutive_losses == 1


def test_without_a_spread_each_side_pays_half_the_spread_the_rule_assumes():
    # Arrange: no spread given: the rule's assumed 1 bp, so 10 + 0.5 bp per side of a quarter
    engine = RiskEngine()
    engine.assess("BTCUSDT", T0, 1.0, 1.0, 1, CALM_VOL, price=100.0)

    # Act: the price has not moved
    pnl = engine.settle("BTCUSDT", T0 + 60 * S, 100.0)

    # Assert
    assert ASSUMED_SPREAD_BPS == 1.0
    assert pnl == pytest.approx(-2 * 0.25 * (0.001 + 0.00005))
