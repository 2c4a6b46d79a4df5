"""The sidecar's inline risk engine: fractional-Kelly sizing, circuit breakers, paper equity and
the ACTIVE / REDUCING / HALTED states (see :mod:`streaming.risk.engine`)."""

from streaming.risk.engine import RiskEngine
from streaming.risk.model import (
    Position,
    RiskDecision,
    RiskLimits,
    RiskSnapshot,
    RiskState,
    Transition,
)
from streaming.risk.sizing import kelly_stake, position_fraction, win_probability

__all__ = [
    "Position",
    "RiskDecision",
    "RiskEngine",
    "RiskLimits",
    "RiskSnapshot",
    "RiskState",
    "Transition",
    "kelly_stake",
    "position_fraction",
    "win_probability",
]
