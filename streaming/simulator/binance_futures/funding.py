"""The perpetual's mark price, index price and funding rate: a small deterministic model.

The perpetual trades the synthetic tape itself, so its own price is the tape's: the last trade
and the book's mid. What the model adds is the spot index it is funded against, the premium
between the two, and Binance's funding rule over that premium. At time ``t`` of a day:

* **flow** ``φ(t)`` ∈ [−1, 1]: the taker orders' signed quantity (buys +, sells −) over their
  total quantity, over the last :data:`FLOW_WINDOW_S` seconds (within the day; 0 without orders);
* **premium index** ``π(t) = PREMIUM_AT_FULL_FLOW · φ(t)``: takers leaning long lift the
  perpetual over the spot index, as leverage demand does (at most ±0.3 %);
* **index price** ``i(t) = mid(t) / (1 + π(t))``, ``mid`` the synthetic book's;
* **funding rate**, Binance's rule: ``P̄`` the average of ``π`` sampled every
  :data:`SAMPLE_S` seconds from the start of the funding interval to ``t``, weighted 1, 2, …, n
  (later samples weigh more); ``F = P̄ + clamp(I − P̄, −0.05 %, +0.05 %)`` with the interest
  rate ``I = 0.01 %`` per interval, then ``F`` clamped to ±:data:`RATE_CAP`. So the rate sits at
  0.01 % while ``P̄`` stays within −0.04 % … +0.06 %, as Binance's does in a calm market, and
  follows ``P̄`` beyond;
* **mark price**, Binance's rule: the median of ``i · (1 + F · τ)`` (``τ`` the share of the
  funding interval still to run), ``mid`` (standing for the index plus the basis) and the last
  trade price. Two of the three are within half a tick of each other, so the mark is always
  within half a tick of the last trade price;
* **next funding time**: the next of 00:00, 08:00 and 16:00 UTC after ``t``. Funding intervals
  never cross midnight, so one day's tape is all the model reads.

Every figure is a pure function of the day's tape and ``t``: the same at any replay.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streaming.simulator import synthetic_book as book
from streaming.simulator.tape import E8, DayTape

US_PER_SECOND = 1_000_000
FUNDING_INTERVAL_US = 8 * 3600 * US_PER_SECOND  # funding at 00:00, 08:00 and 16:00 UTC
INTEREST_RATE = 0.0001  # per funding interval (0.03 % a day)
PREMIUM_CLAMP = 0.0005  # clamp(I − P̄, −0.05 %, +0.05 %)
RATE_CAP = 0.003  # the funding rate's cap and floor, ±0.3 %
PREMIUM_AT_FULL_FLOW = 0.003  # the premium index when every taker of the window buys
FLOW_WINDOW_S = 900
SAMPLE_S = 5  # premium index samples averaged into the funding rate
_CACHED_DAYS = 4


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """One mark price update: prices in 1e-8 units, the funding rate in 1e-8 (signed)."""

    mark_e8: int
    index_e8: int
    funding_rate_e8: int
    next_funding_ms: int
    premium: float  # the premium index π(t)


def funding_rate(average_premium: float) -> float:
    """Binance's funding rate for an interval's average premium index."""
    interest = float(np.clip(INTEREST_RATE - average_premium, -PREMIUM_CLAMP, PREMIUM_CLAMP))
    return float(np.clip(average_premium + interest, -RATE_CAP, RATE_CAP))


def next_funding_us(time_us: int) -> int:
    """The funding time after ``time_us`` (µs since the epoch): 00:00, 08:00 or 16:00 UTC."""
    return (time_us // FUNDING_INTERVAL_US + 1) * FUNDING_INTERVAL_US


@dataclass(frozen=True)
class _Flow:
    """Running sums over a day's taker orders: signed and total quantity (lot steps)."""

    order_time_us: npt.NDArray[np.int64]
    signed: npt.NDArray[np.int64]  # signed[k]: the sum over the first k orders
    total: npt.NDArray[np.int64]

    @classmethod
    def of(cls, tape: DayTape) -> _Flow:
        quantity = tape.order_qty_steps.astype(np.int64)
        sells = tape.trade_buyer_maker[tape.order_first_trade]  # the taker sold
        signed = np.where(sells, -quantity, quantity)
        zero = np.zeros(1, dtype=np.int64)
        return cls(
            tape.order_time_us,
            np.concatenate([zero, np.cumsum(signed)]),
            np.concatenate([zero, np.cumsum(quantity)]),
        )

    def imbalance(self, time_us: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """φ at each time: signed over total quantity of the orders in (t − window, t]."""
        hi = np.searchsorted(self.order_time_us, time_us, side="right")
        lo = np.searchsorted(self.order_time_us, time_us - FLOW_WINDOW_S * US_PER_SECOND, "right")
        total = self.total[hi] - self.total[lo]
        signed = self.signed[hi] - self.signed[lo]
        return np.where(total > 0, signed / np.maximum(total, 1), 0.0)


class PerpetualModel:
    """Mark price, index price and funding rate of the perpetual of each synthetic symbol."""

    def __init__(self) -> None:
        self._flows: OrderedDict[tuple[str, dt.date], _Flow] = OrderedDict()

    def _flow(self, tape: DayTape) -> _Flow:
        key = (tape.instrument.symbol, tape.day)
        flow = self._flows.get(key)
        if flow is None:
            flow = self._flows[key] = _Flow.of(tape)
            while len(self._flows) > _CACHED_DAYS:
                self._flows.popitem(last=False)
        return flow

    def premium(self, tape: DayTape, time_us: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The premium index π at each time (µs since the epoch, within the tape's day)."""
        times = np.asarray(time_us, dtype=np.int64)
        return PREMIUM_AT_FULL_FLOW * self._flow(tape).imbalance(times)

    def average_premium(self, tape: DayTape, time_us: int) -> float:
        """P̄: the weighted average of π over the funding interval up to ``time_us``."""
        start = time_us - time_us % FUNDING_INTERVAL_US
        samples = np.arange(start, time_us + 1, SAMPLE_S * US_PER_SECOND, dtype=np.int64)
        weights = np.arange(1, samples.size + 1, dtype=np.float64)
        return float(np.dot(self.premium(tape, samples), weights) / weights.sum())

    def mark_price(self, tape: DayTape, time_us: int) -> MarkPrice:
        """The mark price update at ``time_us`` (µs since the epoch, within the tape's day)."""
        inst = tape.instrument
        done = int(np.searchsorted(tape.order_time_us, time_us, side="right"))
        bid = book.state_after(tape, done - 1).bid_ticks
        last_ticks = int(tape.trade_price_ticks[tape.order_first_trade[done - 1]]) if done else bid
        mid = (bid + 0.5) * inst.tick_e8
        premium = float(self.premium(tape, [time_us])[0])
        index = mid / (1.0 + premium)
        rate = funding_rate(self.average_premium(tape, time_us))
        funding_us = next_funding_us(time_us)
        remaining = (funding_us - time_us) / FUNDING_INTERVAL_US
        mark = float(np.median([index * (1.0 + rate * remaining), mid, last_ticks * inst.tick_e8]))
        return MarkPrice(
            mark_e8=round(mark),
            index_e8=round(index),
            funding_rate_e8=round(rate * E8),
            next_funding_ms=funding_us // 1000,
            premium=premium,
        )
