"""The sidecar's inline risk engine: fractional-Kelly sizing, circuit breakers, paper equity and
the ACTIVE / REDUCING / HALTED states (see :mod:`trading_assets.lib.risk.engine`)."""

from trading_assets.lib.risk.engine import RiskEngine
from trading_assets.lib.risk.model import (
    Position,
    RiskDecision,
    RiskLimits,
    RiskSnapshot,
    RiskState,
    Transition,
)
from trading_assets.lib.risk.sizing import kelly_stake, position_fraction, win_probability

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
