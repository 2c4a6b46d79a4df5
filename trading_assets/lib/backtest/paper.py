"""A paper trader: predictions through the served decision path, orders filled on a market.

The one trading loop of the backtest and of the sidecar's paper account. Each decision (an
instrument, a time, a model's predicted return and the features the rule reads) goes through
what the sidecar does with a driving prediction, in the same order:

1. the symbol's position is settled once its label horizon (from its opening) has passed, in the
   risk engine at the mid, and in the account by an order that sells (or buys back) exactly the
   quantity held when it arrives;
2. :func:`~trading_assets.lib.risk.decide.decide`: the cost rule's target at the row's spread,
   sized and possibly blocked by the :class:`~trading_assets.lib.risk.RiskEngine`'s breakers;
3. a trade becomes an order for the change from the position held (and in flight) to
   ``size_fraction`` of the account's equity, which reaches the venue ``latency_ns`` later and
   fills there on the best data the :class:`Market` has (a replayed tape in the backtest,
   :mod:`trading_assets.lib.backtest.market`; the live book in the sidecar). A position settled
   and opened again on the same decision is one order, for the difference.

The risk engine keeps its own paper equity, as in the sidecar; the account's equity is the fills'
truth, and it is what the results report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from trading_assets.lib.backtest.account import Account
from trading_assets.lib.backtest.fills import Fill
from trading_assets.lib.models.policy import (
    ASSUMED_SPREAD_BPS,
    DEFAULT_SIGNAL_SCALE,
    FEE_BP,
    SPREAD_FEATURE,
    signal_from_return,
)
from trading_assets.lib.risk import RiskEngine, RiskLimits
from trading_assets.lib.risk.decide import decide

NS = 1_000_000_000
FULL_FEATURES_LEVEL = 1  # decisions on all their features: the fallback chain's first level
FILL_SCHEMA = {
    "time_ns": pl.Int64, "decided_ns": pl.Int64, "instrument": pl.String, "reason": pl.String,
    "source": pl.String, "notional": pl.Float64, "quantity": pl.Float64, "price": pl.Float64,
    "mid": pl.Float64, "fee": pl.Float64, "slippage_bps": pl.Float64, "levels": pl.Int64,
    "unfilled": pl.Float64, "beyond_touch": pl.Float64,
}  # fmt: skip


class Market(Protocol):
    """One instrument's market as the trader sees it at a (non-decreasing) time."""

    def mid(self, now_ns: int) -> float | None: ...

    def fill(
        self, now_ns: int, notional: float, fee_bp: float, quantity: float | None = None
    ) -> Fill | None: ...


@dataclass(frozen=True)
class PaperConfig:
    """How the paper trader trades: the label horizon a position is held, the order latency, costs,
    the risk limits, the account's starting cash (quote) and the signal scale of the model."""

    horizon_s: int = 60
    latency_ns: int = 100_000_000
    fee_bp: float = FEE_BP
    assumed_spread_bps: float = ASSUMED_SPREAD_BPS
    limits: RiskLimits = field(default_factory=RiskLimits)
    initial_cash: float = 10_000.0
    signal_scale: float = DEFAULT_SIGNAL_SCALE


@dataclass(frozen=True)
class Order:
    """An order in flight: a change of ``notional`` (quote), or None to close the position."""

    at_ns: int
    decided_ns: int
    symbol: str
    notional: float | None
    reason: str


class PaperTrader:
    """A risk engine and an account trading decisions on ``markets`` (see the module)."""

    def __init__(self, markets: Mapping[str, Market], config: PaperConfig) -> None:
        self.markets, self.config = markets, config
        self.risk = RiskEngine(config.limits)
        self.account = Account(config.initial_cash)
        self.pending: list[Order] = []
        self.marks: dict[str, float] = {}
        self.fills: list[tuple] = []
        self.unfilled = 0
        self.bought: set[str] = set()  # buy-and-hold: the instruments bought

    @property
    def equity(self) -> float:
        """Cash plus the positions at their last marks."""
        return self.account.equity(self.marks)

    def execute_until(self, now_ns: int) -> list[tuple]:
        """Fill the orders that reached the venue by ``now_ns``; their fill rows."""
        done: list[tuple] = []
        due = [o for o in self.pending if o.at_ns <= now_ns]
        self.pending = [o for o in self.pending if o.at_ns > now_ns]
        for order in sorted(due, key=lambda o: o.at_ns):
            fill = self._fill(order)
            if fill is None:
                self.unfilled += 1
                continue
            self.account.apply(order.symbol, fill)
            done.append(fill_row(order, fill))
        self.fills += done
        return done

    def _fill(self, order: Order) -> Fill | None:
        market, fee_bp = self.markets[order.symbol], self.config.fee_bp
        if order.notional is not None:
            return market.fill(order.at_ns, order.notional, fee_bp)
        held = self.account.quantities.get(order.symbol, 0.0)
        return market.fill(order.at_ns, 0.0, fee_bp, quantity=-held) if held else None

    def in_flight(self, symbol: str, mid: float) -> float:
        """The notional of the symbol's orders in flight (a close: what is held, at ``mid``)."""
        held = self.account.position_value(symbol, mid)
        return sum(-held if o.notional is None else o.notional
                   for o in self.pending if o.symbol == symbol)  # fmt: skip

    def order(self, now_ns: int, symbol: str, notional: float | None, reason: str) -> None:
        if notional is None or abs(notional) > 1e-9 * self.config.initial_cash:
            at_ns = now_ns + self.config.latency_ns
            self.pending.append(Order(at_ns, now_ns, symbol, notional, reason))

    def decide(
        self,
        now_ns: int,
        symbol: str,
        predicted: float,
        spread: float,
        vol: float,
        fallback_level: int = FULL_FEATURES_LEVEL,
        signal_scale: float | None = None,
    ) -> None:
        """One decision: settle what is due, then trade the prediction (see the module). A live
        decision passes its fallback level, which the risk engine may block on, and its model's
        signal scale (the configured one when None)."""
        mid = self.markets[symbol].mid(now_ns)
        if mid is None:
            self.risk.counters["no_market"] += 1
            return
        self.marks[symbol] = mid
        held = self.account.position_value(symbol, mid) + self.in_flight(symbol, mid)
        position = self.risk.positions.get(symbol)
        settled = position is not None and position.opened_ns + self.config.horizon_s * NS <= now_ns
        if settled:
            self.risk.settle(symbol, now_ns, mid)
        config = self.config
        signal = signal_from_return(predicted, signal_scale or config.signal_scale)
        values = {SPREAD_FEATURE: spread}
        verdict = decide(self.risk, symbol, now_ns, predicted, signal, min(1.0, abs(signal)),
                         fallback_level, values, vol, mid, 1.0, config.fee_bp,
                         config.assumed_spread_bps)  # fmt: skip
        if verdict.should_trade:
            target = verdict.size_fraction * self.account.equity(self.marks)
            reason = "close+open" if settled else "resize" if position is not None else "open"
            self.order(now_ns, symbol, target - held, reason)
        elif settled:
            self.order(now_ns, symbol, None, "close")

    def close_all(self, now_ns: int) -> int:
        """Let the orders in flight fill, then close every position; when the last fill was."""
        now_ns = max([now_ns, *(o.at_ns for o in self.pending)])
        self.execute_until(now_ns)
        for symbol in list(self.account.quantities):
            mid = self.markets[symbol].mid(now_ns)
            self.marks[symbol] = self.marks[symbol] if mid is None else mid
            self.order(now_ns, symbol, None, "end")
        done_ns = now_ns + self.config.latency_ns
        self.execute_until(done_ns)
        return done_ns


def fill_row(order: Order, fill: Fill) -> tuple:
    return (order.at_ns, order.decided_ns, order.symbol, order.reason, fill.source, fill.notional,
            fill.quantity, fill.average_price, fill.mid, fill.fee, fill.slippage_bps, fill.levels,
            fill.unfilled, fill.beyond_touch)  # fmt: skip
