"""Replay predictions through the served decision path and fill the orders on the market tapes.

Each decision row (an instrument, a time, a model's predicted return and the features the rule
reads) goes through what the sidecar does with a driving prediction, in the same order:

1. the symbol's position is settled once its label horizon (from its opening) has passed, in the
   risk engine at the mid, and in the account by an order that sells (or buys back) exactly the
   quantity held when it arrives;
2. :func:`~trading_assets.lib.risk.decide.decide`: the cost rule's target at the row's spread,
   sized and possibly blocked by the :class:`~trading_assets.lib.risk.RiskEngine`'s breakers;
3. a trade becomes an order for the change from the position held (and in flight) to
   ``size_fraction`` of the account's equity, which reaches the venue ``latency_ns`` later and
   fills there on the best data (:mod:`trading_assets.lib.backtest.market`). A position settled
   and opened again on the same decision is one order, for the difference.

The risk engine keeps its own paper equity, as in the sidecar; the account's equity is the fills'
truth, and it is what the results report. At the end every position is closed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from trading_assets.lib.backtest.account import Account
from trading_assets.lib.backtest.fills import Fill
from trading_assets.lib.backtest.market import MarketTape
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
HISTORY_LEVEL = 1  # a replayed row has all its features: the fallback chain's first level
VOLATILITY = "rv_60s"
DECISION_COLUMNS = ("instrument", "time_ns", "predicted_return")
FILL_SCHEMA = {
    "time_ns": pl.Int64, "decided_ns": pl.Int64, "instrument": pl.String, "reason": pl.String,
    "source": pl.String, "notional": pl.Float64, "quantity": pl.Float64, "price": pl.Float64,
    "mid": pl.Float64, "fee": pl.Float64, "slippage_bps": pl.Float64, "levels": pl.Int64,
    "unfilled": pl.Float64, "beyond_touch": pl.Float64,
}  # fmt: skip


@dataclass(frozen=True)
class BacktestConfig:
    """How the replay trades: the label horizon a position is held, the order latency, costs,
    the risk limits, the account's starting cash (quote) and the signal scale of the model."""

    horizon_s: int = 60
    latency_ns: int = 100_000_000
    fee_bp: float = FEE_BP
    assumed_spread_bps: float = ASSUMED_SPREAD_BPS
    limits: RiskLimits = field(default_factory=RiskLimits)
    initial_cash: float = 10_000.0
    signal_scale: float = DEFAULT_SIGNAL_SCALE


@dataclass(frozen=True)
class _Order:
    """An order in flight: a change of ``notional`` (quote), or None to close the position."""

    at_ns: int
    decided_ns: int
    symbol: str
    notional: float | None
    reason: str


@dataclass
class BacktestResult:
    """The fills, the equity after every decision, and what the risk engine counted."""

    fills: pl.DataFrame
    equity: pl.DataFrame
    counters: dict[str, int]
    initial_cash: float
    unfilled_orders: int = 0


class _Replay:
    def __init__(self, markets: Mapping[str, MarketTape], config: BacktestConfig) -> None:
        self.markets, self.config = markets, config
        self.risk = RiskEngine(config.limits)
        self.account = Account(config.initial_cash)
        self.pending: list[_Order] = []
        self.marks: dict[str, float] = {}
        self.fills: list[tuple] = []
        self.unfilled = 0
        self.bought: set[str] = set()  # buy-and-hold: the instruments bought

    def execute_until(self, now_ns: int) -> None:
        due = [o for o in self.pending if o.at_ns <= now_ns]
        self.pending = [o for o in self.pending if o.at_ns > now_ns]
        for order in sorted(due, key=lambda o: o.at_ns):
            fill = self._fill(order)
            if fill is None:
                self.unfilled += 1
                continue
            self.account.apply(order.symbol, fill)
            self.fills.append(_fill_row(order, fill))

    def _fill(self, order: _Order) -> Fill | None:
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
            self.pending.append(_Order(at_ns, now_ns, symbol, notional, reason))

    def decide(self, now_ns: int, symbol: str, predicted: float, spread: float, vol: float) -> None:
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
        signal = signal_from_return(predicted, config.signal_scale)
        values = {SPREAD_FEATURE: spread}
        verdict = decide(self.risk, symbol, now_ns, predicted, signal, min(1.0, abs(signal)),
                         HISTORY_LEVEL, values, vol, mid, 1.0, config.fee_bp,
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


def _fill_row(order: _Order, fill: Fill) -> tuple:
    return (order.at_ns, order.decided_ns, order.symbol, order.reason, fill.source, fill.notional,
            fill.quantity, fill.average_price, fill.mid, fill.fee, fill.slippage_bps, fill.levels,
            fill.unfilled, fill.beyond_touch)  # fmt: skip


def _column(frame: pl.DataFrame, name: str) -> list[float]:
    if name not in frame.columns:
        return [math.nan] * frame.height
    return frame[name].cast(pl.Float64).fill_null(math.nan).to_list()


def _checked(decisions: pl.DataFrame, markets: Mapping[str, MarketTape]) -> pl.DataFrame:
    missing = [c for c in DECISION_COLUMNS if c not in decisions.columns]
    if missing:
        raise ValueError(f"decisions lack the columns {missing}")
    unknown = set(decisions["instrument"].unique().to_list()) - set(markets)
    if unknown:
        raise ValueError(f"no market tape for {sorted(unknown)}")
    for market in markets.values():
        market.rewind()
    return decisions.sort("time_ns", "instrument", maintain_order=True)


def _result(replay: _Replay, times: list[int], equities: list[float]) -> BacktestResult:
    """Close what is held after the last decision, then the result."""
    if times:
        times.append(replay.close_all(times[-1]))
        equities.append(replay.account.equity(replay.marks))
    return BacktestResult(
        fills=pl.DataFrame(replay.fills, schema=FILL_SCHEMA, orient="row"),
        equity=pl.DataFrame(
            {"time_ns": times, "equity": equities},
            schema={"time_ns": pl.Int64, "equity": pl.Float64},
        ),
        counters=dict(replay.risk.counters),
        initial_cash=replay.config.initial_cash,
        unfilled_orders=replay.unfilled,
    )


def buy_and_hold(
    decisions: pl.DataFrame, markets: Mapping[str, MarketTape], config: BacktestConfig
) -> BacktestResult:
    """The gate's buy-and-hold baseline through the same fills: at the first decision, buy the
    largest position the risk limits allow in each instrument, hold it to the last, sell."""
    rows = _checked(decisions, markets)
    replay = _Replay(markets, config)
    times, equities = [], []
    for now_ns, symbol in zip(rows["time_ns"].to_list(), rows["instrument"].to_list(), strict=True):
        replay.execute_until(now_ns)
        mid = markets[symbol].mid(now_ns)
        if mid is not None:
            replay.marks[symbol] = mid
            if symbol not in replay.bought:
                replay.bought.add(symbol)
                stake = config.limits.max_position_fraction * config.initial_cash
                replay.order(now_ns, symbol, stake, "open")
        times.append(now_ns)
        equities.append(replay.account.equity(replay.marks))
    return _result(replay, times, equities)


def run_backtest(
    decisions: pl.DataFrame, markets: Mapping[str, MarketTape], config: BacktestConfig
) -> BacktestResult:
    """Replay ``decisions`` (``instrument``, ``time_ns``, ``predicted_return``, and the
    ``spread_bps`` and ``rv_60s`` the rule and the breakers read, NaN where missing) on
    ``markets`` (one tape per instrument, replayed from its start) as the sidecar would have
    traded them."""
    rows = _checked(decisions, markets)
    replay = _Replay(markets, config)
    times, equities = [], []
    columns = zip(rows["time_ns"].to_list(), rows["instrument"].to_list(),
                  _column(rows, "predicted_return"), _column(rows, SPREAD_FEATURE),
                  _column(rows, VOLATILITY), strict=True)  # fmt: skip
    for now_ns, symbol, predicted, spread, vol in columns:
        replay.execute_until(now_ns)
        replay.decide(now_ns, symbol, predicted, spread, vol)
        times.append(now_ns)
        equities.append(replay.account.equity(replay.marks))
    return _result(replay, times, equities)
