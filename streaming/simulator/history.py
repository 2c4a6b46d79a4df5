"""REST history over the synthetic market: only what has happened by "now" is visible.

Queries walk day tapes forward (from an id or a time) or backward (most recent) until the limit
is filled, so paging crosses day boundaries transparently. Blocking: call from a worker thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable

import polars as pl

from streaming.simulator import synthetic_book as book
from streaming.simulator.binance import bulk_format
from streaming.simulator.synthetic import EPOCH_DAY, SyntheticMarket, day_of_us, day_start_us

_ONE_DAY = dt.timedelta(days=1)


class MarketHistory:
    """Thread-safe, time-bounded views of a :class:`SyntheticMarket` for the REST handlers."""

    def __init__(self, market: SyntheticMarket, listing_date: dt.date) -> None:
        self.market = market
        self.listing_date = max(listing_date, EPOCH_DAY)
        self._lock = threading.Lock()
        self._bars: OrderedDict[tuple[str, dt.date], pl.DataFrame] = OrderedDict()

    def locked(self, fn: Callable, *args):
        """Call ``fn(*args)`` holding the lock that guards the market caches."""
        with self._lock:
            return fn(*args)

    def _frames(self, symbol: str, day: dt.date, now_us: int, agg: bool) -> pl.DataFrame:
        tape = self.market.tape(symbol, day)
        frame = tape.agg_trades_frame() if agg else tape.trades_frame()
        return frame.filter(pl.col("time_us") <= now_us)

    def _forward(
        self, symbol: str, day: dt.date, now_us: int, agg: bool, keep: pl.Expr, limit: int
    ) -> pl.DataFrame:
        today = day_of_us(now_us)
        parts: list[pl.DataFrame] = []
        found = 0
        day = max(day, self.listing_date)
        while day <= today and found < limit:
            part = self._frames(symbol, day, now_us, agg).filter(keep).head(limit - found)
            parts.append(part)
            found += part.height
            day += _ONE_DAY
        return pl.concat(parts) if parts else self._frames(symbol, today, 0, agg).clear()

    def _backward(self, symbol: str, now_us: int, agg: bool, limit: int) -> pl.DataFrame:
        day = day_of_us(now_us)
        parts: list[pl.DataFrame] = []
        found = 0
        while day >= self.listing_date and found < limit:
            part = self._frames(symbol, day, now_us, agg).tail(limit - found)
            parts.insert(0, part)
            found += part.height
            day -= _ONE_DAY
        return pl.concat(parts) if parts else self._frames(symbol, day, 0, agg).clear()

    def trades_from_id(self, symbol: str, from_id: int, limit: int, now_us: int) -> pl.DataFrame:
        """Up to ``limit`` trades from ``from_id`` on, as far as ``now_us``."""
        day = self.market.day_of_trade_id(symbol, from_id)
        keep = pl.col("id") >= from_id
        return self._forward(symbol, day, now_us, False, keep, limit)

    def recent_trades(self, symbol: str, limit: int, now_us: int) -> pl.DataFrame:
        """The last ``limit`` trades up to ``now_us``."""
        return self._backward(symbol, now_us, False, limit)

    def aggs_from_id(self, symbol: str, from_id: int, limit: int, now_us: int) -> pl.DataFrame:
        """Up to ``limit`` aggTrades from ``from_id`` on, as far as ``now_us``."""
        day = self.market.day_of_agg_id(symbol, from_id)
        keep = pl.col("agg_id") >= from_id
        return self._forward(symbol, day, now_us, True, keep, limit)

    def aggs_between(
        self, symbol: str, start_us: int, end_us: int, limit: int, now_us: int
    ) -> pl.DataFrame:
        """Up to ``limit`` aggTrades with time in [start_us, end_us], oldest first."""
        keep = pl.col("time_us").is_between(start_us, end_us)
        bounded_now = min(now_us, end_us)
        return self._forward(symbol, day_of_us(start_us), bounded_now, True, keep, limit)

    def recent_aggs(self, symbol: str, limit: int, now_us: int) -> pl.DataFrame:
        """The last ``limit`` aggTrades up to ``now_us``."""
        return self._backward(symbol, now_us, True, limit)

    def _day_bars(self, symbol: str, day: dt.date, now_us: int) -> pl.DataFrame:
        start = day_start_us(day)
        if day == day_of_us(now_us):
            return bulk_format.minute_bars(self.market.tape(symbol, day), start, now_us)
        key = (symbol.upper(), day)
        if key not in self._bars:
            self._bars[key] = bulk_format.minute_bars(self.market.tape(symbol, day), start)
            while len(self._bars) > 16:
                self._bars.popitem(last=False)
        return self._bars[key]

    def klines(
        self, symbol: str, start_us: int | None, end_us: int | None, limit: int, now_us: int
    ) -> pl.DataFrame:
        """Minute bars with open time in [start, end], oldest first; most recent by default."""
        end_us = min(now_us if end_us is None else end_us, now_us)
        if start_us is None:
            start_us = end_us - (limit - 1) * bulk_format.US_PER_MINUTE
        first_day = max(day_of_us(max(start_us, 0)), self.listing_date)
        parts: list[pl.DataFrame] = []
        found, day = 0, first_day
        while day <= day_of_us(end_us) and found < limit:
            part = self._day_bars(symbol, day, now_us).filter(
                pl.col("open_time_us").is_between(start_us - start_us % 60_000_000, end_us)
            )
            parts.append(part.head(limit - found))
            found += parts[-1].height
            day += _ONE_DAY
        if not parts:
            return self._day_bars(symbol, self.listing_date, now_us).clear()
        return pl.concat(parts)

    def depth(self, symbol: str, limit: int, now_us: int) -> bytes:
        """``/api/v3/depth`` body for the book as of ``now_us``."""
        tape = self.market.tape(symbol, day_of_us(now_us))
        done = int(tape.order_time_us.searchsorted(now_us, side="right"))
        return book.snapshot_json(tape.instrument, book.state_after(tape, done - 1), limit)
