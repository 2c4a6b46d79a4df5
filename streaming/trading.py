"""Who drives a symbol's decision and what each serving model predicts; what the driving
model's prediction trades is :func:`trading_assets.lib.risk.decide.decide`, the backtest's too.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Mapping
from typing import Any

from streaming.config import SidecarConfig
from streaming.fallback import FallbackDecision
from streaming.inference import ServingModel
from streaming.metrics import MessageCounts
from streaming.paper import PaperDesk
from streaming.predictions import Prediction, Role, unscored_prediction
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG
from trading_assets.lib.lakehouse.landing import MODEL_ERROR_REASON
from trading_assets.lib.risk import RiskEngine
from trading_assets.lib.risk.decide import decide

log = logging.getLogger(__name__)
NS = 1_000_000_000
VOLATILITY_FEATURE = "rv_60s"


def canary_drives(symbol: str, second: int, share: float) -> bool:
    """Whether the @canary drives ``symbol``'s decisions in this wall-clock second.

    A hash of (symbol, second) rather than a coin flip: every prediction within the same
    second (the grid's and any on a bar close) has the same driver, and a replayed log can
    tell afterwards which model a tick belonged to.
    """
    return zlib.crc32(f"{symbol}{second}".encode()) % 1000 < share * 1000


class Trader:
    """A tick's predictions, one per serving model, from the fallback's decision; the driving
    one trades on the risk engine's paper account, whose positions close at the label horizon.
    ``messages``: the sidecar's per-symbol counters, whose newest trade gives the price."""

    def __init__(
        self,
        config: SidecarConfig,
        risk: RiskEngine,
        messages: MessageCounts,
        paper: PaperDesk | None = None,
    ) -> None:
        self.config, self.risk, self.messages = config, risk, messages
        self.paper = paper  # every role's paper account, which trades each of its predictions

    def driver(self, symbol: str, now_ns: int, models: Mapping[Role, ServingModel]) -> Role:
        """The role whose signal trades: the @canary for its share of decisions, else champion."""
        share = self.config.canary_share
        if "canary" in models and share > 0 and canary_drives(symbol, now_ns // NS, share):
            return "canary"
        return "champion"

    def prediction(
        self,
        symbol: str,
        now_ns: int,
        decision: FallbackDecision,
        model: ServingModel,
        drives: bool,
        read_s: float,
    ) -> Prediction:
        started = time.perf_counter() - read_s
        values = {k: (math.nan if v is None else v) for k, v in decision.features.items()}
        try:
            score = model.score(values)
        except Exception as exc:
            # One model failing must not silence the others, and the failure must reach the
            # predictions log: the rollout's error rate (and its rollback) is counted from there.
            log.warning("%s v%s failed to score %s: %s", model.role, model.version, symbol, exc)
            return unscored_prediction(
                symbol, now_ns, int(decision.level),
                f"{MODEL_ERROR_REASON}: {type(exc).__name__}: {exc}",
                (time.perf_counter() - started) * 1000, model.role, model.version,
            )  # fmt: skip
        if self.paper is not None:
            self.paper.on_prediction(model.role, model.version, symbol, now_ns,
                                     score.predicted_return, values, int(decision.level),
                                     model.signal_scale)  # fmt: skip
        confidence = min(1.0, abs(score.signal)) * decision.confidence_multiplier
        volatility = values.get(VOLATILITY_FEATURE, math.nan)
        should_trade, size, risk_score, reason = False, 0.0, 1.0, decision.explained
        if drives:
            verdict = decide(
                self.risk, symbol, now_ns, score.predicted_return, score.signal, confidence,
                int(decision.level), values, volatility, self.last_price(symbol),
                self.config.canary_size if model.role == "canary" else 1.0,
                self.config.fee_bp, self.config.assumed_spread_bps,
            )  # fmt: skip
            size, risk_score = verdict.size_fraction, verdict.risk_score
            should_trade = verdict.should_trade and decision.can_trade
            reason = "; ".join([decision.explained, *verdict.reasons]).strip("; ")
        else:
            reason = f"{model.role}: logged, not acted on"
        latency_ms = (time.perf_counter() - started) * 1000
        return Prediction(
            symbol=symbol,
            timestamp=now_ns,
            signal=score.signal,
            confidence=confidence,
            risk_score=risk_score,
            should_trade=should_trade,
            model_version=model.version,
            fallback_level=int(decision.level),
            latency_ms=latency_ms,
            role=model.role,
            size_fraction=size if should_trade else 0.0,
            reason=reason,
            predicted_return=score.predicted_return,
        )

    def last_price(self, symbol: str) -> float | None:
        """The price of the symbol's newest trade (None before the first)."""
        messages = self.messages.by_symbol.get(symbol)
        trade = None if messages is None else messages.newest_trade
        return None if trade is None else float(trade.price)

    def last_book_ticker(self, symbol: str) -> Any:
        """The symbol's newest book ticker (None before the first)."""
        messages = self.messages.by_symbol.get(symbol)
        return None if messages is None else messages.newest_book_ticker

    def settle(self, symbol: str, now_ns: int) -> None:
        """Close the symbol's paper position once its label horizon (counted from its opening)
        has passed, at the last traded price. The risk engine holds the one position per symbol
        that trading decisions open or re-size, so equity sees each size's own P&L once."""
        position, price = self.risk.positions.get(symbol), self.last_price(symbol)
        horizon_ns = FEATURE_CONFIG.label_horizon_s * NS
        if position is not None and price and position.opened_ns + horizon_ns <= now_ns:
            self.risk.settle(symbol, now_ns, price)
