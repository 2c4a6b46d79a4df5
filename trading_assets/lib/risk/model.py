"""The risk engine's limits, states and outputs (plain data, shown by the API and metrics)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from trading_assets.lib.models.policy import FEE_BP


class RiskState(StrEnum):
    """ACTIVE trades at full size; REDUCING trades smaller (or not, per breaker) while a warning
    condition holds; HALTED trades nothing until it recovers (see ``RiskLimits``)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True)
class RiskLimits:
    """Sizing rules and circuit-breaker thresholds.

    Sizing: ``kelly_fraction`` of the Kelly stake for a bet paying ``payoff_ratio`` per unit
    risked (see :mod:`trading_assets.lib.risk.sizing`), at most ``max_position_fraction`` of
    equity per symbol and ``max_gross_exposure`` over all open positions; ``reducing_scale``
    multiplies sizes in REDUCING; a size under ``min_trade_fraction`` is not traded. Paper P&L
    pays ``fee_bp`` per side (plus half the spread the caller saw) on every change of notional,
    as the evaluation does.
    Breakers: drawdown from the equity high-water mark ≥ ``max_drawdown`` halts, ≥
    ``reduce_drawdown`` reduces. A volatility above ``vol_spike_ratio`` × the symbol's baseline
    (an EMA of its past volatility, half-life ``vol_baseline_half_life_s``, trusted after
    ``vol_min_samples`` readings) blocks that symbol and keeps the engine REDUCING for
    ``spike_hold_s``. A fallback level above ``max_tradable_fallback_level`` (stale data) blocks
    the decision. ``max_consecutive_losses`` losing positions in a row start a cooldown of
    ``loss_cooldown_s`` without trades.
    Recovery from HALTED: :meth:`RiskEngine.reset` at any time, or automatically once
    ``halt_recovery_s`` have passed (None: manual only). Either way the high-water mark is rebased
    to the current equity, so the same drawdown cannot re-trigger the halt at once; a new loss of
    ``max_drawdown`` from there halts again.
    """

    kelly_fraction: float = 0.25
    payoff_ratio: float = 1.0
    max_position_fraction: float = 0.25
    max_gross_exposure: float = 1.0
    reducing_scale: float = 0.5
    min_trade_fraction: float = 0.001
    max_drawdown: float = 0.25
    reduce_drawdown: float = 0.10
    vol_spike_ratio: float = 3.0
    vol_baseline_half_life_s: float = 3_600.0
    vol_min_samples: int = 30
    spike_hold_s: float = 300.0
    max_tradable_fallback_level: int = 3
    max_consecutive_losses: int = 5
    loss_cooldown_s: float = 900.0
    halt_recovery_s: float | None = 3_600.0
    initial_equity: float = 1.0
    max_transitions_kept: int = 1_000
    fee_bp: float = FEE_BP

    def __post_init__(self) -> None:
        fractions = ("kelly_fraction", "max_position_fraction", "reducing_scale", "max_drawdown")
        for name in fractions:
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0 < self.reduce_drawdown <= self.max_drawdown:
            raise ValueError("reduce_drawdown must be in (0, max_drawdown]")
        if self.payoff_ratio <= 0 or self.initial_equity <= 0 or self.vol_spike_ratio <= 1:
            raise ValueError("payoff_ratio and initial_equity must be > 0, vol_spike_ratio > 1")
        if self.max_consecutive_losses < 1 or not 1 <= self.max_tradable_fallback_level <= 5:
            raise ValueError("max_consecutive_losses ≥ 1, max_tradable_fallback_level in 1..5")
        if not 0 <= self.fee_bp < math.inf:
            raise ValueError(f"fee_bp must be a finite number ≥ 0, got {self.fee_bp}")


@dataclass(frozen=True)
class RiskDecision:
    """The risk engine's verdict on one prediction.

    ``size_fraction``: fraction of equity to hold, signed like the signal (negative = short),
    0 when not trading. ``risk_score``: in [0, 1], the largest of the breaker pressures (see
    :meth:`RiskEngine.assess`). ``reasons``: why the size is what it is, or why not trading.
    """

    symbol: str
    now_ns: int
    should_trade: bool
    size_fraction: float
    risk_score: float
    state: RiskState
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Transition:
    """One state change, for the API and for alerting."""

    time_ns: int
    from_state: RiskState
    to_state: RiskState
    reason: str


@dataclass(frozen=True)
class Position:
    """A symbol's paper position: its current signed fraction and currency notional, when it was
    opened (a re-size keeps that time: the holding period runs from the first entry), the price
    its current size was taken at (NaN when the caller gave none), the P&L its earlier sizes
    made up to their re-sizes less the costs of every entry and re-size so far, booked when the
    position settles, and the cost of one side per unit of notional at the last entry or
    re-size (what closing it is charged)."""

    size_fraction: float
    notional: float
    opened_ns: int
    entry_price: float = math.nan
    accrued_pnl: float = 0.0
    side_cost: float = 0.0


@dataclass(frozen=True)
class RiskSnapshot:
    """Everything an API or Prometheus shows about the engine at one moment."""

    state: RiskState
    equity: float
    peak_equity: float
    drawdown: float
    consecutive_losses: int
    cooldown_until_ns: int | None
    halted_since_ns: int | None
    positions: dict[str, Position]
    counters: dict[str, int]
    transitions: tuple[Transition, ...] = field(default=())

    @property
    def gross_exposure(self) -> float:
        """Sum of absolute open position fractions."""
        return math.fsum(abs(p.size_fraction) for p in self.positions.values())
