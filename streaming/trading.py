"""Who drives a symbol's decision, and what the driving model's prediction trades.

The rule is the evaluation's own (:mod:`trading_assets.lib.models.policy`): a predicted return
trades only when it pays the round trip at the spread seen now (the assumed one when the feature
service carries no book); the risk engine then sizes the position and may still block it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import NamedTuple

from streaming.config import SidecarConfig
from streaming.risk import RiskEngine
from trading_assets.lib.models.policy import (
    BP,
    SPREAD_FEATURE,
    known_spread,
    round_trip_cost,
    target_position,
)


def canary_drives(symbol: str, second: int, share: float) -> bool:
    """Whether the @canary drives ``symbol``'s decisions in this wall-clock second.

    A hash of (symbol, second) rather than a coin flip: every prediction within the same
    second (the grid's and any on a bar close) has the same driver, and a replayed log can
    tell afterwards which model a tick belonged to.
    """
    return zlib.crc32(f"{symbol}{second}".encode()) % 1000 < share * 1000


class Trade(NamedTuple):
    """The risk engine's verdict on a driving prediction, and why in words."""

    should_trade: bool
    size_fraction: float
    risk_score: float
    reasons: list[str]


def trade(
    risk: RiskEngine,
    config: SidecarConfig,
    symbol: str,
    now_ns: int,
    predicted_return: float,
    signal: float,
    confidence: float,
    fallback_level: int,
    values: Mapping[str, float],
    volatility: float,
    price: float | None,
    size_scale: float,
) -> Trade:
    """What the driving model's prediction trades: the cost rule's target, sized by ``risk``."""
    spread = known_spread(values.get(SPREAD_FEATURE), config.assumed_spread_bps)
    target = target_position(predicted_return, spread, config.fee_bp)
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
        f"{round_trip_cost(spread, config.fee_bp) / BP:.1f} bp"
    )
    return Trade(
        verdict.should_trade, verdict.size_fraction, verdict.risk_score, [costs, *verdict.reasons]
    )
