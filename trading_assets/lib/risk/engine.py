"""The inline risk engine: sizes each prediction, applies circuit breakers, keeps paper equity.

Whether to trade at all is the trading rule's call (:mod:`trading_assets.lib.models.policy`):
the caller passes its target position, and a flat target is not traded. A long or short one is
sized here (fractional Kelly) and may still be blocked by a breaker or the minimum size.

Paper equity: starts at ``initial_equity``. Every decision that trades opens (or re-sizes) the
symbol's one paper position: ``size_fraction`` of the equity at that moment, as a fixed notional.
Given the price, a re-size first marks the old notional to it (its P&L so far is accrued) and
keeps the opening time, so each size earns only over the time it was held. The caller settles
the position once its holding period (counted from the opening) is over: with
:meth:`RiskEngine.settle` at the current price, or with :meth:`RiskEngine.record_return` and the
underlying's simple return over the period. Its P&L, ``notional · sign · return`` per size held
plus what was accrued, less costs, is added to equity. Costs are the evaluation's: every change
of notional (entry, re-size, exit) pays ``fee_bp`` plus half the caller's spread per unit of
notional changed; the exit is charged at the spread of the last entry or re-size. The
high-water mark is the highest equity seen (rebased on recovery from HALTED), drawdown is
``1 − equity / high-water mark``. A settled position with negative P&L is a loss; a positive one
ends a losing streak.

State, re-evaluated on every call with the caller's clock:

* HALTED when drawdown ≥ ``max_drawdown``; stays so until :meth:`reset` or, when configured,
  ``halt_recovery_s`` after the halt (both rebase the high-water mark and clear the streak).
* else REDUCING while drawdown ≥ ``reduce_drawdown``, a loss cooldown runs, or a volatility spike
  was seen in the last ``spike_hold_s``; sizes are multiplied by ``reducing_scale``.
* else ACTIVE.

Each change is logged, appended to :attr:`RiskEngine.transitions` and passed to ``on_transition``
(the sidecar counts it in Prometheus). The engine is meant for one thread (the sidecar's event
loop); it does no I/O.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable

from trading_assets.lib.models.policy import ASSUMED_SPREAD_BPS, side_cost
from trading_assets.lib.risk.model import (
    Position,
    RiskDecision,
    RiskLimits,
    RiskSnapshot,
    RiskState,
    Transition,
)
from trading_assets.lib.risk.sizing import position_fraction

log = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000
SAFE_MODE_LEVEL = 5


class _VolatilityBaseline:
    """A symbol's usual volatility: an EMA in time over its past readings.

    Until the EMA's own weights outgrow it, each reading weighs at least 1 / (readings so far),
    so the early baseline is the mean of the readings rather than the first one: a sidecar that
    starts in a quiet minute (``rv_60s`` near 0) would otherwise keep a baseline near 0 for about
    a half-life and read every later minute as a spike.
    """

    __slots__ = ("last_ns", "mean", "samples")

    def __init__(self) -> None:
        self.mean = math.nan
        self.last_ns = 0
        self.samples = 0

    def update(self, now_ns: int, volatility: float, half_life_s: float) -> None:
        if self.samples == 0:
            self.mean = volatility
        else:
            elapsed_s = max(now_ns - self.last_ns, 0) / NS_PER_S
            alpha = 1.0 - 2.0 ** (-elapsed_s / half_life_s) if half_life_s > 0 else 1.0
            alpha = max(alpha, 1.0 / (self.samples + 1))
            self.mean += alpha * (volatility - self.mean)
        self.last_ns = now_ns
        self.samples += 1


class RiskEngine:
    """Fractional-Kelly sizing behind circuit breakers (see the module docstring)."""

    def __init__(
        self,
        limits: RiskLimits | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.limits = limits or RiskLimits()
        self.on_transition = on_transition
        self.state = RiskState.ACTIVE
        self.equity = self.limits.initial_equity
        self.peak_equity = self.equity
        self.consecutive_losses = 0
        self.cooldown_until_ns: int | None = None
        self.halted_since_ns: int | None = None
        self.positions: dict[str, Position] = {}
        self.counters: Counter[str] = Counter()
        """Decisions, trades, blocks by breaker, losses, halts (for Prometheus counters)."""
        self.transitions: deque[Transition] = deque(maxlen=self.limits.max_transitions_kept)
        self._baselines: dict[str, _VolatilityBaseline] = {}
        self._last_spike_ns: int | None = None

    @property
    def drawdown(self) -> float:
        """``1 − equity / high-water mark`` (0 at a new high)."""
        return max(0.0, 1.0 - self.equity / self.peak_equity)

    def assess(
        self,
        symbol: str,
        now_ns: int,
        signal: float,
        confidence: float,
        fallback_level: int,
        volatility: float,
        price: float | None = None,
        size_scale: float = 1.0,
        target: float | None = None,
        spread_bps: float = ASSUMED_SPREAD_BPS,
    ) -> RiskDecision:
        """Whether and how much to trade on one prediction.

        ``signal`` in [−1, 1], ``confidence`` in [0, 1] (the model's, times the fallback's
        multiplier), ``fallback_level`` 1–5, ``volatility``: the symbol's recent realized
        volatility (e.g. ``rv_60s``), compared with its own baseline. ``price``: the symbol's
        current price, which a trade opens or re-sizes the paper position at. ``size_scale``
        scales the stake before the minimum-size check and the position (a @canary trades at
        reduced size, and its paper P&L is that size's). ``target``: the trading rule's position
        (−1, 0, +1; None: the signal's direction), whose sign the size takes; 0 is not traded.
        ``spread_bps``: the spread the rule saw, half of which each side pays with the fee
        (the rule's assumed spread when not given).
        ``risk_score`` is the
        largest of: drawdown / max_drawdown, how far volatility is toward a spike
        ((ratio − 1) / (spike ratio − 1)), staleness ((level − 1) / 4), the losing streak /
        its limit; 1 when halted or cooling down. Each bounded to [0, 1].
        """
        limits = self.limits
        self.counters["decisions"] += 1
        spike_ratio = self._volatility_ratio(symbol, now_ns, volatility)
        self._update_state(now_ns)
        blocks: list[tuple[str, str]] = []
        if self.state is RiskState.HALTED:
            blocks.append(("halted", f"halted since {self.halted_since_ns}"))
        if self.cooldown_until_ns is not None and now_ns < self.cooldown_until_ns:
            blocks.append(("loss_cooldown", f"cooling down after {limits.max_consecutive_losses} "
                           f"losses until {self.cooldown_until_ns}"))  # fmt: skip
        if fallback_level > limits.max_tradable_fallback_level:
            blocks.append(("stale_data", f"stale data: fallback level {fallback_level} > "
                           f"{limits.max_tradable_fallback_level}"))  # fmt: skip
        if not math.isfinite(volatility) or volatility < 0:
            blocks.append(("volatility_unknown", f"volatility {volatility} unusable"))
        elif spike_ratio is not None and spike_ratio > limits.vol_spike_ratio:
            blocks.append(("volatility_spike", f"volatility {spike_ratio:.1f}× its baseline > "
                           f"{limits.vol_spike_ratio:g}×"))  # fmt: skip
        if target is not None and target == 0.0:
            blocks.append(("below_cost", "predicted return within the round-trip cost"))
        size, reasons = self._size(symbol, signal, confidence)
        if target:
            size = math.copysign(size, target)
        if size_scale != 1.0:
            size *= size_scale
            reasons.append(f"size × {size_scale:g}")
        if not blocks and abs(size) < limits.min_trade_fraction:
            blocks.append(("below_minimum", f"size {abs(size):.4f} < {limits.min_trade_fraction}"))
        score = self._risk_score(now_ns, fallback_level, spike_ratio)
        if blocks:
            for name, _ in blocks:
                self.counters[f"blocked_{name}"] += 1
            reasons = [why for _, why in blocks]
            return RiskDecision(symbol, now_ns, False, 0.0, score, self.state, tuple(reasons))
        self.counters["trades"] += 1
        cost = side_cost(spread_bps, limits.fee_bp)
        self.positions[symbol] = self._resized(symbol, size, now_ns, price, cost)
        return RiskDecision(symbol, now_ns, True, size, score, self.state, tuple(reasons))

    def record_return(self, symbol: str, now_ns: int, realized_return: float) -> float:
        """Settle the symbol's paper position with the underlying's simple return over its
        holding period; returns its P&L (0 when no position was open)."""
        position = self.positions.pop(symbol, None)
        if position is None or not math.isfinite(realized_return):
            return 0.0
        exit_cost = abs(position.notional) * position.side_cost
        return self._book(
            now_ns, position.accrued_pnl + position.notional * realized_return - exit_cost
        )

    def settle(self, symbol: str, now_ns: int, price: float) -> float:
        """Settle the symbol's paper position at ``price``: each size it held earns the price
        move over the time it was held; returns its P&L (0 when no position was open)."""
        position = self.positions.pop(symbol, None)
        if position is None:
            return 0.0
        exit_cost = abs(position.notional) * position.side_cost
        return self._book(now_ns, position.accrued_pnl + _marked(position, price) - exit_cost)

    def _resized(
        self, symbol: str, size: float, now_ns: int, price: float | None, cost: float
    ) -> Position:
        """The symbol's position at ``size`` from now on, the old size marked to ``price`` and
        the change of notional paying ``cost`` per unit."""
        entry = math.nan if price is None else price
        notional = size * self.equity
        old = self.positions.get(symbol)
        if old is None:
            return Position(size, notional, now_ns, entry, -abs(notional) * cost, cost)
        change_cost = abs(notional - old.notional) * cost
        accrued = old.accrued_pnl + _marked(old, entry) - change_cost
        return Position(size, notional, old.opened_ns, entry, accrued, cost)

    def _book(self, now_ns: int, pnl: float) -> float:
        """Add a settled position's P&L to equity and feed the loss-streak breaker."""
        self.equity += pnl
        self.peak_equity = max(self.peak_equity, self.equity)
        if pnl < 0:
            self.counters["losses"] += 1
            self.consecutive_losses += 1
            if self.consecutive_losses >= self.limits.max_consecutive_losses:
                self.cooldown_until_ns = now_ns + round(self.limits.loss_cooldown_s * NS_PER_S)
                self.counters["cooldowns"] += 1
                log.warning("%d consecutive losses: no trades for %g s",
                            self.consecutive_losses, self.limits.loss_cooldown_s)  # fmt: skip
                self.consecutive_losses = 0
        elif pnl > 0:
            self.counters["wins"] += 1
            self.consecutive_losses = 0
        self._update_state(now_ns)
        return pnl

    def reset(self, now_ns: int, reason: str = "manual reset") -> None:
        """Leave HALTED (or clear a cooldown) now: rebase the high-water mark to the current
        equity and clear the losing streak."""
        self.peak_equity = self.equity
        self.consecutive_losses = 0
        self.cooldown_until_ns = None
        self.halted_since_ns = None
        self._transition(now_ns, RiskState.ACTIVE, reason)
        self._update_state(now_ns)

    def snapshot(self) -> RiskSnapshot:
        """State, equity, counters and the kept transitions, as plain data."""
        return RiskSnapshot(
            self.state, self.equity, self.peak_equity, self.drawdown, self.consecutive_losses,
            self.cooldown_until_ns, self.halted_since_ns, dict(self.positions),
            dict(self.counters), tuple(self.transitions),
        )  # fmt: skip

    def _size(self, symbol: str, signal: float, confidence: float) -> tuple[float, list[str]]:
        limits = self.limits
        size = position_fraction(
            signal, confidence, limits.kelly_fraction, limits.payoff_ratio,
            limits.max_position_fraction,
        )  # fmt: skip
        reasons = [f"kelly {limits.kelly_fraction:g}× stake {abs(size):.4f}"]
        if self.state is RiskState.REDUCING:
            size *= limits.reducing_scale
            reasons.append(f"reducing: size × {limits.reducing_scale:g}")
        others = math.fsum(abs(p.size_fraction) for s, p in self.positions.items() if s != symbol)
        room = max(0.0, limits.max_gross_exposure - others)
        if abs(size) > room:
            size = math.copysign(room, size)
            reasons.append(f"gross exposure cap: {room:.4f} left")
        return size, reasons

    def _volatility_ratio(self, symbol: str, now_ns: int, volatility: float) -> float | None:
        """Volatility / the symbol's baseline before this reading (None until trusted); the
        reading then joins the baseline, so a lasting regime change becomes the new normal."""
        if not math.isfinite(volatility) or volatility < 0:
            return None
        baseline = self._baselines.setdefault(symbol, _VolatilityBaseline())
        ratio = None
        if baseline.samples >= self.limits.vol_min_samples and baseline.mean > 0:
            ratio = volatility / baseline.mean
            if ratio > self.limits.vol_spike_ratio:
                self._last_spike_ns = now_ns
        baseline.update(now_ns, volatility, self.limits.vol_baseline_half_life_s)
        return ratio

    def _risk_score(self, now_ns: int, fallback_level: int, spike_ratio: float | None) -> float:
        limits = self.limits
        cooling = self.cooldown_until_ns is not None and now_ns < self.cooldown_until_ns
        if self.state is RiskState.HALTED or cooling:
            return 1.0
        pressures = [
            self.drawdown / limits.max_drawdown,
            (fallback_level - 1) / (SAFE_MODE_LEVEL - 1),
            self.consecutive_losses / limits.max_consecutive_losses,
        ]
        if spike_ratio is not None:
            pressures.append((spike_ratio - 1.0) / (limits.vol_spike_ratio - 1.0))
        return min(1.0, max(0.0, *pressures))

    def _update_state(self, now_ns: int) -> None:
        limits = self.limits
        if self.state is RiskState.HALTED:
            since = self.halted_since_ns or now_ns
            recovery = limits.halt_recovery_s
            if recovery is None or now_ns - since < recovery * NS_PER_S:
                return
            self.counters["halt_recoveries"] += 1
            self.reset(now_ns, f"halt recovery after {recovery:g} s")
            return
        drawdown = self.drawdown
        if drawdown >= limits.max_drawdown:
            self.halted_since_ns = now_ns
            self.counters["halts"] += 1
            self._transition(now_ns, RiskState.HALTED,
                             f"drawdown {drawdown:.1%} ≥ {limits.max_drawdown:.0%}")  # fmt: skip
            return
        warnings = []
        if drawdown >= limits.reduce_drawdown:
            warnings.append(f"drawdown {drawdown:.1%} ≥ {limits.reduce_drawdown:.0%}")
        if self.cooldown_until_ns is not None and now_ns < self.cooldown_until_ns:
            warnings.append(f"loss cooldown until {self.cooldown_until_ns}")
        spike = self._last_spike_ns
        if spike is not None and now_ns - spike < limits.spike_hold_s * NS_PER_S:
            warnings.append(f"volatility spike at {spike}")
        if warnings:
            self._transition(now_ns, RiskState.REDUCING, "; ".join(warnings))
        else:
            self._transition(now_ns, RiskState.ACTIVE, "all clear")

    def _transition(self, now_ns: int, to_state: RiskState, reason: str) -> None:
        if to_state is self.state:
            return
        change = Transition(now_ns, self.state, to_state, reason)
        self.transitions.append(change)
        self.state = to_state
        if self.on_transition is not None:
            self.on_transition(change)
        level = logging.WARNING if to_state is not RiskState.ACTIVE else logging.INFO
        log.log(level, "risk %s → %s: %s", change.from_state, to_state, reason)


def _marked(position: Position, price: float) -> float:
    """P&L of the position's current size from its entry price to ``price`` (0 when either is
    unknown: a move nobody priced is not booked)."""
    entry = position.entry_price
    if not (math.isfinite(entry) and math.isfinite(price)) or entry <= 0:
        return 0.0
    return position.notional * (price / entry - 1.0)
