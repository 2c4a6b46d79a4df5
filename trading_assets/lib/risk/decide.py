"""What a driving model's prediction trades: the cost rule's target, sized by the risk engine.

The one decision of the sidecar and of the backtest. The rule is the evaluation's own
(:mod:`trading_assets.lib.models.policy`): a predicted return trades only when it pays the round
trip at the spread seen now (the assumed one when the features carry no book); the risk engine
then sizes the position and may still block it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from trading_assets.lib.models.policy import (
    ASSUMED_SPREAD_BPS,
    BP,
    FEE_BP,
    SPREAD_FEATURE,
    known_spread,
    round_trip_cost,
    target_position,
)
from trading_assets.lib.risk.engine import RiskEngine


class Trade(NamedTuple):
    """The risk engine's verdict on a driving prediction, and why in words."""

    should_trade: bool
    size_fraction: float
    risk_score: float
    reasons: list[str]


def decide(
    risk: RiskEngine,
    symbol: str,
    now_ns: int,
    predicted_return: float,
    signal: float,
    confidence: float,
    fallback_level: int,
    values: Mapping[str, float],
    volatility: float,
    price: float | None,
    size_scale: float = 1.0,
    fee_bp: float = FEE_BP,
    assumed_spread_bps: float = ASSUMED_SPREAD_BPS,
) -> Trade:
    """What the prediction trades: the cost rule's target at the spread in ``values`` (else the
    assumed one), sized by ``risk``, which opens or re-sizes its paper position at ``price``."""
    spread = known_spread(values.get(SPREAD_FEATURE), assumed_spread_bps)
    target = target_position(predicted_return, spread, fee_bp)
    verdict = risk.assess(
        symbol,
        now_ns,
        signal,
        confidence,
        fallback_level,
        volatility,
        price=price,
        size_scale=size_scale,
        target=target,
        spread_bps=spread,
    )
    costs = (
        f"predicted {predicted_return / BP:+.1f} bp vs round trip "
        f"{round_trip_cost(spread, fee_bp) / BP:.1f} bp"
    )
    return Trade(
        verdict.should_trade, verdict.size_fraction, verdict.risk_score, [costs, *verdict.reasons]
    )
