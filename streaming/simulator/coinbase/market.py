"""One product of the synthetic market as one Coinbase connection sees it: a cursor over its tape.

A cursor starts at the connection's "now" (every taker order up to then has happened) and is
advanced by the connection as its clock runs: each order due becomes an :class:`Order` (its
fills and the book before and after it), from which the connection renders its trades, ticker
and level2 update. The cursor keeps the previous day's tape as well as the current one, so the
trades snapshot and the rolling 24 h statistics never stop at midnight. A cursor ``delay_us``
behind walks the tapes as that delayed venue shows them (:mod:`streaming.simulator.lead_lag`):
its tapes' times are later by the delay, and a day lasts until the delayed clock passes midnight.

Products and symbols: a Coinbase product id ``BASE-QUOTE`` trades the synthetic market of the
symbol ``BASE + QUOTE``, with Coinbase's US dollar standing for the synthetic market's quote
convention, Binance's tether: ``BTC-USD`` is the very tape of ``BTCUSDT`` (the same trade ids,
prices, sizes and times), so one market can be compared across both protocols. Other quotes are
taken as they are (``ETH-BTC`` is ``ETHBTC``); ``BTC-USDT`` names ``BTCUSDT`` too.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from streaming.simulator import synthetic_book as book
from streaming.simulator.coinbase.frames import DayStats
from streaming.simulator.lead_lag import TapeLoader, venue_day
from streaming.simulator.synthetic_book import BookState
from streaming.simulator.tape import DayTape, Instrument, day_start_us

US_PER_DAY = 86_400_000_000
QUOTE_ALIASES = {"USD": "USDT"}
"""Coinbase quote currency -> the synthetic market's (its symbols are Binance's)."""
_PRODUCT_ID = re.compile(r"([A-Z0-9]{2,16})-([A-Z0-9]{2,16})").fullmatch


def symbol_of(product_id: str) -> str | None:
    """The synthetic symbol a product id trades (``BTC-USD`` -> ``BTCUSDT``), None when the
    text is not a product id (upper case ``BASE-QUOTE``)."""
    match = _PRODUCT_ID(product_id)
    if match is None:
        return None
    base, quote = match.groups()
    return base + QUOTE_ALIASES.get(quote, quote)


@dataclass(frozen=True, slots=True)
class Order:
    """One taker order of a tape as it happens: its fills and the book it leaves."""

    tape: DayTape
    index: int  # the order's index in the tape
    before: BookState
    after: BookState

    @property
    def fills(self) -> range:
        """Indices of the order's trades in the tape."""
        first = int(self.tape.order_first_trade[self.index])
        return range(first, first + int(self.tape.order_fill_count[self.index]))

    @property
    def time_us(self) -> int:
        """When the order traded (µs since the epoch)."""
        return int(self.tape.order_time_us[self.index])


class ProductCursor:
    """A product's position in the synthetic tape for one connection (see the module)."""

    def __init__(
        self,
        product_id: str,
        symbol: str,
        tape: DayTape,
        previous: DayTape | None,
        now_us: int,
        delay_us: int = 0,
    ) -> None:
        self.product_id = product_id
        self.symbol = symbol
        self.tape = tape
        self.previous = previous
        """The day before ``tape`` (None before the listing date)."""
        self.delay_us = delay_us
        """How far behind the shared tape this venue is (its tapes are already delayed)."""
        self.next_order = int(np.searchsorted(tape.order_time_us, now_us, side="right"))
        self.state = book.state_after(tape, self.next_order - 1)
        self.state_us = day_start_us(tape.day) + delay_us
        """When the book last changed (the last order's time), level2's ``event_time``."""
        if self.next_order:
            self.state_us = int(tape.order_time_us[self.next_order - 1])
        elif previous is not None:  # the book as the last order of the day before left it
            self.state = book.state_after(previous, previous.order_count - 1)
            self.state_us = int(previous.order_time_us[-1])
        self._stats: DayStats | None = None
        self._stats_second = -1

    @classmethod
    async def open(
        cls,
        product_id: str,
        symbol: str,
        now_us: int,
        load: TapeLoader,
        listing_date: dt.date,
        delay_us: int = 0,
    ) -> ProductCursor:
        """The cursor of ``product_id`` at ``now_us``, its tapes loaded (``load`` gives them
        as the venue shows them, ``delay_us`` behind)."""
        day = venue_day(now_us, delay_us)
        tape = await load(symbol, day)
        before = day - dt.timedelta(days=1)
        previous = await load(symbol, before) if before >= listing_date else None
        return cls(product_id, symbol, tape, previous, now_us, delay_us)

    @property
    def instrument(self) -> Instrument:
        """The product's tick and lot step (its synthetic symbol's)."""
        return self.tape.instrument

    @property
    def next_order_us(self) -> int | None:
        """When the next order trades, None past the day's last."""
        if self.next_order >= self.tape.order_count:
            return None
        return int(self.tape.order_time_us[self.next_order])

    async def roll(self, now_us: int, load: TapeLoader) -> None:
        """Move on to the next day's tape once this one is spent and its day is over."""
        spent = self.next_order >= self.tape.order_count
        if not spent or venue_day(now_us, self.delay_us) <= self.tape.day:
            return
        following = await load(self.symbol, self.tape.day + dt.timedelta(days=1))
        self.previous, self.tape, self.next_order = self.tape, following, 0

    def due(self, now_us: int) -> list[Order]:
        """The orders that traded by ``now_us`` since the last call, the book moved past them
        (call :meth:`roll` first: an order of the next day waits for its tape)."""
        orders: list[Order] = []
        tape, times = self.tape, self.tape.order_time_us
        while self.next_order < tape.order_count and int(times[self.next_order]) <= now_us:
            after = book.state_after(tape, self.next_order)
            orders.append(Order(tape, self.next_order, self.state, after))
            self.state, self.state_us = after, int(times[self.next_order])
            self.next_order += 1
        return orders

    # -- what happened before now ---------------------------------------------------------------
    def _boundary(self) -> int:
        """Index of the first trade of the current tape that has not happened yet."""
        if self.next_order >= self.tape.order_count:
            return self.tape.trade_count
        return int(self.tape.order_first_trade[self.next_order])

    def recent_trades(self, count: int) -> list[tuple[DayTape, int]]:
        """The last ``count`` trades that happened, newest first, as (tape, fill index)."""
        end = self._boundary()
        trades = [(self.tape, i) for i in range(end - 1, max(-1, end - 1 - count), -1)]
        if len(trades) < count and self.previous is not None:
            last = self.previous.trade_count
            trades += [
                (self.previous, i)
                for i in range(last - 1, max(-1, last - 1 - count + len(trades)), -1)
            ]
        return trades

    def last_price_ticks(self) -> int:
        """The price of the last trade that happened (the best bid before the first trade)."""
        trades = self.recent_trades(1)
        if not trades:
            return self.state.bid_ticks
        tape, index = trades[0]
        return int(tape.trade_price_ticks[index])

    def stats(self, now_us: int, last_ticks: int) -> DayStats:
        """The rolling 24 h statistics at ``now_us`` with ``last_ticks`` the last price: the
        window is recomputed once a second of market time, the last price widens its range."""
        second = now_us // 1_000_000
        if self._stats is None or second != self._stats_second:
            self._stats, self._stats_second = self._window_stats(now_us, last_ticks), second
        stats = self._stats
        low, high = min(stats.low_ticks, last_ticks), max(stats.high_ticks, last_ticks)
        return DayStats(last_ticks, stats.open_ticks, low, high, stats.volume_steps)

    def _window_stats(self, now_us: int, last: int) -> DayStats:
        start_us = now_us - US_PER_DAY
        prices: list[np.ndarray] = []
        volume = 0
        open_ticks = last
        for tape in (self.previous, self.tape):
            if tape is None:
                continue
            times = tape.trade_time_us
            lo = int(np.searchsorted(times, start_us, side="right"))
            hi = int(np.searchsorted(times, now_us, side="right"))
            if tape is self.tape:
                hi = min(hi, self._boundary())
            if lo > 0 and not prices:  # the price 24 h ago: the last trade at or before then
                open_ticks = int(tape.trade_price_ticks[lo - 1])
            if hi > lo:
                prices.append(tape.trade_price_ticks[lo:hi])
                volume += int(tape.trade_qty_steps[lo:hi].sum())
        if not prices:
            return DayStats(last, open_ticks, last, last, 0)
        low = min(int(p.min()) for p in prices)
        high = max(int(p.max()) for p in prices)
        return DayStats(last, open_ticks, low, high, volume)
