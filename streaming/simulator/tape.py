"""The numeric tape of one synthetic symbol-day, the instrument it trades, and day arithmetic."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from streaming.simulator.latent import DriftPath

US_PER_DAY = 86_400_000_000
E8 = 100_000_000


@dataclass(frozen=True, slots=True)
class Instrument:
    """Price tick and lot step of a symbol, both as integer multiples of 1e-8."""

    symbol: str
    tick_e8: int
    step_e8: int

    def quote_e8(self, price_ticks: np.ndarray, qty_steps: np.ndarray) -> np.ndarray:
        """Exact price × qty in units of 1e-8 (truncated, as Binance does)."""
        scale = self.tick_e8 * self.step_e8
        product = price_ticks.astype(np.int64) * qty_steps.astype(np.int64)
        if scale >= E8:
            return product * (scale // E8)
        return product // (E8 // scale)


@dataclass(frozen=True)
class DayTape:
    """One symbol-day of trades (fill level) and the taker orders behind them (order level)."""

    instrument: Instrument
    day: dt.date
    first_trade_id: int
    first_agg_id: int
    trade_time_us: np.ndarray  # µs since the Unix epoch, non-decreasing
    trade_price_ticks: np.ndarray
    trade_qty_steps: np.ndarray
    trade_buyer_maker: np.ndarray
    order_first_trade: np.ndarray  # index into the fill arrays
    order_fill_count: np.ndarray
    order_bid_ticks: np.ndarray  # best bid right after the order (ask = bid + 1 tick)
    open_ticks: int  # the bid at 00:00, before any trade
    latent: DriftPath  # the day's latent drift (all zero without an edge)

    @property
    def trade_count(self) -> int:
        """Fills in the day."""
        return int(self.trade_time_us.size)

    @property
    def order_count(self) -> int:
        """Taker orders (aggTrades) in the day."""
        return int(self.order_first_trade.size)

    @property
    def trade_ids(self) -> np.ndarray:
        """Trade id of every fill."""
        return self.first_trade_id + np.arange(self.trade_count, dtype=np.int64)

    @cached_property
    def order_time_us(self) -> np.ndarray:
        """Time of every taker order (that of its first fill)."""
        return self.trade_time_us[self.order_first_trade]

    @cached_property
    def trade_quote_e8(self) -> np.ndarray:
        """Quote quantity of every fill, in 1e-8 units."""
        return self.instrument.quote_e8(self.trade_price_ticks, self.trade_qty_steps)

    @cached_property
    def order_qty_steps(self) -> np.ndarray:
        """Total quantity of every taker order, in lot steps."""
        return np.add.reduceat(self.trade_qty_steps, self.order_first_trade)

    @cached_property
    def order_direction(self) -> np.ndarray:
        """Sign of the latent drift when each taker order traded (−1, 0, +1)."""
        return self.latent.direction_at(self.order_time_us - day_start_us(self.day))

    def expected_forward_return(self, time_us: np.ndarray, horizon_s: int) -> np.ndarray:
        """The oracle's expected log return over (t, t + horizon_s] for times ``t`` of this day
        (µs since the Unix epoch): the latent drift it implies, the noise being unpredictable."""
        in_day = np.asarray(time_us, np.int64) - day_start_us(self.day)
        return self.latent.expected_forward_return(in_day, horizon_s)

    def trades_frame(self) -> pl.DataFrame:
        """Fill-level numeric frame (prices and sizes as 1e-8 integers, time in µs)."""
        inst = self.instrument
        return pl.DataFrame(
            {
                "id": self.trade_ids,
                "price_e8": self.trade_price_ticks * inst.tick_e8,
                "qty_e8": self.trade_qty_steps * inst.step_e8,
                "quote_e8": self.trade_quote_e8,
                "time_us": self.trade_time_us,
                "is_buyer_maker": self.trade_buyer_maker,
            }
        )

    def agg_trades_frame(self) -> pl.DataFrame:
        """Order-level numeric frame: one aggTrade per taker order."""
        first = self.order_first_trade
        return pl.DataFrame(
            {
                "agg_id": self.first_agg_id + np.arange(self.order_count, dtype=np.int64),
                "price_e8": self.trade_price_ticks[first] * self.instrument.tick_e8,
                "qty_e8": self.order_qty_steps * self.instrument.step_e8,
                "first_trade_id": self.first_trade_id + first,
                "last_trade_id": self.first_trade_id + first + self.order_fill_count - 1,
                "time_us": self.trade_time_us[first],
                "is_buyer_maker": self.trade_buyer_maker[first],
            }
        )


def instrument_for(symbol: str, reference_price: float) -> Instrument:
    """Tick ≈ 1e-4.. of the price and lot step ≈ 1 quote unit, both powers of ten."""
    tick_exp = max(-8, math.floor(math.log10(reference_price)) - 4)
    step_exp = max(-8, min(3, math.floor(math.log10(1.0 / reference_price))))
    return Instrument(symbol, round(10 ** (tick_exp + 8)), round(10 ** (step_exp + 8)))


def day_start_us(day: dt.date) -> int:
    """Microseconds since the Unix epoch at 00:00 UTC of ``day``."""
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY


def day_of_us(time_us: int) -> dt.date:
    """The UTC day a time in microseconds since the Unix epoch falls on."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=time_us // US_PER_DAY)
