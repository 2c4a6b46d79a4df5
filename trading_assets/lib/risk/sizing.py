"""Position size by fractional Kelly, in the p/b form.

A bet that wins ``b`` per unit staked with probability ``p`` and loses the stake otherwise grows
log wealth fastest when staking ``f* = p − (1 − p) / b`` of it (Kelly). The model's prediction is
read as such a bet: its direction is the sign of the signal, and its edge over a coin flip is
``|signal| · confidence`` (confidence already carries the fallback's multiplier), so
``p = (1 + |signal| · confidence) / 2``. With symmetric moves (``b = 1``, the default),
``f* = |signal| · confidence``. No edge, or an edge that does not cover ``b``, stakes nothing.

Full Kelly is optimal only if ``p`` is exact, and a model's ``p`` is not; staking a fraction
``c`` of it keeps ``c · (2 − c)`` of the growth rate (44 % at ``c = 0.25``) for ``c²`` of the
variance (1/16). The stake is then capped per position (25 % of equity by default).
"""

from __future__ import annotations

import math


def win_probability(signal: float, confidence: float) -> float:
    """``p = (1 + |signal| · confidence) / 2``, both inputs clipped to their ranges."""
    edge = min(abs(signal), 1.0) * min(max(confidence, 0.0), 1.0)
    return 0.5 * (1.0 + edge)


def kelly_stake(p: float, payoff_ratio: float) -> float:
    """Full-Kelly fraction ``p − (1 − p) / b`` for a binary bet, never negative."""
    return max(0.0, p - (1.0 - p) / payoff_ratio)


def position_fraction(
    signal: float, confidence: float, kelly_fraction: float, payoff_ratio: float, cap: float
) -> float:
    """Signed fraction of equity: ``sign(signal) · min(cap, kelly_fraction · f*)``; 0 for a
    non-finite input."""
    if not (math.isfinite(signal) and math.isfinite(confidence)):
        return 0.0
    stake = kelly_fraction * kelly_stake(win_probability(signal, confidence), payoff_ratio)
    return math.copysign(min(cap, stake), signal) if stake > 0 else 0.0
