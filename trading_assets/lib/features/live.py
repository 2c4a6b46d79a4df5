"""Live features from the trade and bookTicker streams of one symbol, message by message.

:class:`BarBuilder` turns trades into bars exactly (integer decimal arithmetic, then one correctly
rounded float per value), bucketing by the exchange's trade time as the lakehouse bars do.
:class:`LiveFeatures` steps :class:`IncrementalFeatures` through every interval, empty ones too.

When is an interval complete? Trades arrive in trade-id (and trade-time) order, so interval
``[s, s + L)`` has all its trades once a trade at or after ``s + L`` has arrived. Its book quote is
the last ticker with time ≤ ``s + L``, where a ticker's time is its local receive time (spot
bookTickers carry no exchange time). Messages arrive in receive order, so every such ticker is in
once any message received after ``s + L`` has arrived; the interval is emitted when both hold.
Keep the host clock synchronised: the book is timed by it, the bars by the exchange.
Without messages, :meth:`LiveFeatures.advance_to` closes intervals by the caller's clock; a trade
that arrives for an interval already closed is counted in ``late_trades`` and dropped.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Sequence
from itertools import compress
from operator import attrgetter, mul, not_
from typing import Protocol

from trading_assets.lib.features.definitions import (
    BOOK,
    DEFAULT_CONFIG,
    TRADE_GROUPS,
    UNITS_PER_ONE,
    US_PER_SECOND,
    FeatureConfig,
)
from trading_assets.lib.features.incremental import Bar, FeatureRow, IncrementalFeatures, Quote

log = logging.getLogger(__name__)
_NOTIONAL_SCALE = UNITS_PER_ONE * UNITS_PER_ONE
MAX_PENDING_QUOTES = 100_000


class TradeLike(Protocol):
    """What a trade must carry (``streaming.venues.binance.Trade`` has it)."""

    @property
    def trade_id(self) -> int: ...
    @property
    def price(self) -> str: ...
    @property
    def quantity(self) -> str: ...
    @property
    def is_buyer_maker(self) -> bool: ...
    @property
    def trade_ns(self) -> int: ...
    @property
    def receive_ns(self) -> int: ...


class BookTickerLike(Protocol):
    """What a book ticker must carry (``streaming.venues.binance.BookTicker`` has it)."""

    @property
    def bid_price(self) -> str: ...
    @property
    def bid_qty(self) -> str: ...
    @property
    def ask_price(self) -> str: ...
    @property
    def ask_qty(self) -> str: ...
    @property
    def receive_ns(self) -> int: ...


def decimal_units(text: str) -> int:
    """A plain decimal string (≤ 8 fractional digits, as Binance sends) in exact 1e-8 units."""
    whole, _, fraction = text.partition(".")
    if len(fraction) == 8:  # what Binance sends
        return int(whole + fraction)
    if len(fraction) > 8:
        if fraction[8:].strip("0"):
            raise ValueError(f"more than 8 fractional digits: {text!r}")
        fraction = fraction[:8]
    return int(whole + fraction) * 10 ** (8 - len(fraction))


# Decimals with Binance's eight fractional digits, each followed by one space.
_EIGHT_DIGIT_RUN = re.compile(r"(?:[0-9]+\.[0-9]{8} )*").fullmatch
_PRICE, _QUANTITY, _BUYER_MAKER = (
    attrgetter("price"), attrgetter("quantity"), attrgetter("is_buyer_maker")
)  # fmt: skip


def units_of(texts: list[str]) -> list[int]:
    """:func:`decimal_units` of each text: in one pass of C when all carry eight digits."""
    joined = " ".join(texts)
    if _EIGHT_DIGIT_RUN(joined + " ") is not None:
        return list(map(int, joined.replace(".", "").split(" ")))
    return list(map(decimal_units, texts))


# The exact sums of some of a bar's trades, in 1e-8 units (notional in 1e-16): open, high, low,
# close, volume, notional, taker buy volume, count, first id, last id.
_Sums = tuple[int, int, int, int, int, int, int, int, int, int]
FOLD_EVERY = 64
"""Trades of an open bar summed at a time, so the trade that completes it sums at most this many."""


def _sums(trades: Sequence[TradeLike]) -> _Sums:
    prices = units_of(list(map(_PRICE, trades)))
    quantities = units_of(list(map(_QUANTITY, trades)))
    return (
        prices[0], max(prices), min(prices), prices[-1], sum(quantities),
        sum(map(mul, prices, quantities)),
        sum(compress(quantities, map(not_, map(_BUYER_MAKER, trades)))),  # taker buys
        len(trades), trades[0].trade_id, trades[-1].trade_id,
    )  # fmt: skip


def _summable(trade: TradeLike) -> bool:
    try:
        decimal_units(trade.price)
        decimal_units(trade.quantity)
    except ValueError:
        return False
    return True


def _merged(earlier: _Sums | None, later: _Sums | None) -> _Sums | None:
    if earlier is None or later is None:
        return earlier or later
    return (
        earlier[0], max(earlier[1], later[1]), min(earlier[2], later[2]), later[3],
        earlier[4] + later[4], earlier[5] + later[5], earlier[6] + later[6],
        earlier[7] + later[7], earlier[8], later[9],
    )  # fmt: skip


def _bar(symbol: str, start_us: int, sums: _Sums) -> Bar:
    """One correctly rounded float per value: an int divided by an int is correctly rounded in
    Python, so a price comes out as ``float`` of its text."""
    open_, high, low, close, volume, notional, buy, count, first_id, last_id = sums
    return Bar(
        symbol, start_us, open_ / UNITS_PER_ONE, high / UNITS_PER_ONE, low / UNITS_PER_ONE,
        close / UNITS_PER_ONE, volume / UNITS_PER_ONE, notional / _NOTIONAL_SCALE,
        buy / UNITS_PER_ONE, (volume - buy) / UNITS_PER_ONE, count, first_id, last_id,
    )  # fmt: skip


def bar_of(symbol: str, start_us: int, trades: Sequence[TradeLike]) -> Bar:
    """The bar of one interval from its trades in trade-id order (at least one): exact integer
    sums, then one correctly rounded float per value."""
    return _bar(symbol, start_us, _sums(trades))


class BarBuilder:
    """Bars of one symbol from its trades in trade-id order (exact sums, like silver → bars).

    The open bar's trades are kept as they came (``trades``, appended to, never replaced) and
    summed FOLD_EVERY at a time by :meth:`fold` and at the close: per trade, an append and a
    share of a few calls into C, where summing each trade as it came took a dozen operations in
    Python. Whoever appends to ``trades`` directly calls :meth:`fold` when it holds FOLD_EVERY.
    """

    def __init__(self, symbol: str, bar_s: int = 1) -> None:
        self.symbol = symbol
        self._bar_us = bar_s * US_PER_SECOND
        self._start_us: int | None = None
        self.trades: list[TradeLike] = []
        self._folded: _Sums | None = None  # the sums of the open bar's trades no longer listed
        self.unsummable_trades = 0

    @property
    def open_bar_start_us(self) -> int | None:
        """Start of the bar being built (None when none is open)."""
        return self._start_us

    def add(self, trade: TradeLike) -> Bar | None:
        """Add a trade; returns the bar it completed when it opens a later interval."""
        time_us = trade.trade_ns // 1000
        start = time_us - time_us % self._bar_us
        completed = None
        if start != self._start_us:
            if self._start_us is not None and start < self._start_us:
                raise ValueError(f"trade {trade.trade_id} at {time_us} is before the open bar")
            completed = self.close()
            self._start_us = start
        self.trades.append(trade)
        if len(self.trades) >= FOLD_EVERY:
            self.fold()
        return completed

    def fold(self) -> None:
        """Sum the listed trades of the open bar into its running sums."""
        if self.trades:
            self._folded = _merged(self._folded, self._listed_sums())

    def close(self) -> Bar | None:
        """Complete the open bar now (end of input, or its interval is over by the clock)."""
        start = self._start_us
        if start is None:
            return None
        sums = _merged(self._folded, self._listed_sums()) if self.trades else self._folded
        self._start_us = self._folded = None
        return None if sums is None else _bar(self.symbol, start, sums)

    def _listed_sums(self) -> _Sums | None:
        """The sums of the listed trades, which are taken off the list. A trade whose price or
        quantity has more than 8 significant fractional digits (Binance sends 8) is left out and
        counted in ``unsummable_trades``; None when no trade is left."""
        trades = self.trades
        try:
            return _sums(trades)
        except ValueError:
            kept = [trade for trade in trades if _summable(trade)]
            left_out = len(trades) - len(kept)
            self.unsummable_trades += left_out
            log.error("%s: %d trades left out of their bar: decimals with more than 8 "
                      "fractional digits", self.symbol, left_out)  # fmt: skip
            return _sums(kept) if kept else None
        finally:
            trades.clear()


class LiveFeatures:
    """Features of one symbol from its live trades and book tickers (see the module docstring).

    ``last_message_ns`` is the newest receive time of a message taken (0 before the first),
    ``newest_row`` the last row emitted (None before the first).
    """

    def __init__(
        self,
        symbol: str,
        config: FeatureConfig = DEFAULT_CONFIG,
        groups: Sequence[str] = TRADE_GROUPS,
        bar_s: int = 1,
    ) -> None:
        self.features = IncrementalFeatures(symbol, config, groups, bar_s)
        self.bars = BarBuilder(symbol, bar_s)
        self._open_trades = self.bars.trades
        self._bar_us = bar_s * US_PER_SECOND
        self._uses_book = BOOK in self.features.groups
        self._completed: deque[Bar] = deque()
        # Tickers are kept as received and only the last one before each interval's end is
        # converted to a Quote: most are superseded within their interval.
        self._quotes: deque[BookTickerLike] = deque()
        self._quote: Quote | None = None
        # Where _emit stopped: an interval whose trades are all in and which waits only for a
        # message received after its end (``None``: it waits for trades or the clock instead).
        self._book_wait_end_us: int | None = None
        self._complete_until_us = 0  # every interval ending at or before this has all its trades
        # Trades timed in [from, to) (ns) join the open bar and complete nothing (see _emit).
        self._quiet_from_ns = self._quiet_to_ns = 0
        self.last_message_ns = 0
        self._clock_ns = 0  # how far advance_to and flush moved the receive clock on
        self.newest_row: FeatureRow | None = None
        self.late_trades = 0

    @property
    def quote(self) -> Quote | None:
        """The book as of the last emitted interval."""
        return self._quote

    def on_trade(self, trade: TradeLike) -> list[FeatureRow]:
        """Take one trade; returns the rows of every interval this completed (often none)."""
        received_ns = trade.receive_ns
        if received_ns > self.last_message_ns:
            self.last_message_ns = received_ns
        if self._quiet_from_ns <= trade.trade_ns < self._quiet_to_ns:
            open_trades = self._open_trades  # most trades: one more of the open bar
            open_trades.append(trade)
            if len(open_trades) >= FOLD_EVERY:
                self.bars.fold()
            return []
        time_us = trade.trade_ns // 1000
        start = time_us - time_us % self._bar_us
        if start + self._bar_us <= self._complete_until_us:
            self.late_trades += 1
            return self._emit(self._complete_until_us)
        bar = self.bars.add(trade)
        if bar is not None:
            self._completed.append(bar)
        self._complete_until_us = max(self._complete_until_us, start)
        return self._emit(self._complete_until_us)

    def on_book_ticker(self, ticker: BookTickerLike) -> list[FeatureRow]:
        """Take one book ticker; returns the rows of every interval this completed."""
        received_ns = ticker.receive_ns
        if received_ns > self.last_message_ns:
            self.last_message_ns = received_ns
        if self._uses_book:
            quotes = self._quotes
            quotes.append(ticker)
            if len(quotes) > MAX_PENDING_QUOTES:
                # No interval has closed for a long while (no trades yet): fold the oldest into
                # the current book so memory stays bounded; only the newest at a close matters.
                self._quote = _quote(quotes.popleft())
        wait_end = self._book_wait_end_us
        if wait_end is None or self._received_us() <= wait_end:
            return []  # a ticker completes an interval only by arriving after its end
        return self._emit(self._complete_until_us)

    def advance_to(self, time_us: int) -> list[FeatureRow]:
        """Close every interval ending at or before ``time_us`` by the caller's clock."""
        open_start = self.bars.open_bar_start_us
        if open_start is not None and open_start + self._bar_us <= time_us:
            self._close_open_bar()
        self._clock_ns = max(self._clock_ns, (time_us + 1) * 1000)
        self._complete_until_us = max(self._complete_until_us, time_us)
        return self._emit(time_us)

    def flush(self) -> list[FeatureRow]:
        """End of input: close the open bar and emit every interval up to it."""
        self._close_open_bar()
        if not self._completed:
            return []
        end = self._completed[-1].bar_start_us + self._bar_us
        self._clock_ns = max(self._clock_ns, (end + 1) * 1000)
        self._complete_until_us = max(self._complete_until_us, end)
        return self._emit(end)

    def _received_us(self) -> int:
        """The newest receive time (µs) of a message, or of the clock moved on by the caller."""
        return max(self.last_message_ns, self._clock_ns) // 1000

    def _close_open_bar(self) -> None:
        self._quiet_from_ns = self._quiet_to_ns = 0
        bar = self.bars.close()
        if bar is not None:
            self._completed.append(bar)

    def _emit(self, complete_until_us: int) -> list[FeatureRow]:
        self._book_wait_end_us = None
        rows = self._rows(complete_until_us)
        if rows:
            self.newest_row = rows[-1]
        # The next trades of the open bar would complete nothing while this state holds: all
        # intervals that could be emitted were, and none waits for a message (only for trades
        # or the clock). They skip the bar builder's checks and this method.
        start = self.bars.open_bar_start_us
        if (
            start is not None
            and self._book_wait_end_us is None
            and start <= complete_until_us == self._complete_until_us < start + self._bar_us
        ):
            self._quiet_from_ns, self._quiet_to_ns = start * 1000, (start + self._bar_us) * 1000
        else:
            self._quiet_from_ns = self._quiet_to_ns = 0
        return rows

    def _rows(self, complete_until_us: int) -> list[FeatureRow]:
        rows: list[FeatureRow] = []
        features, completed, quotes = self.features, self._completed, self._quotes
        received_us = self._received_us()
        start = features.next_bar_start_us
        if start is None:
            if not completed:
                return rows
            start = completed[0].bar_start_us
        while True:
            end = start + self._bar_us
            if end > complete_until_us:
                return rows
            if self._uses_book and received_us <= end:
                self._book_wait_end_us = end
                return rows
            newest = None
            # A ticker counts up to its interval's end by its receive time in whole µs.
            before_ns = (end + 1) * 1000
            while quotes and quotes[0].receive_ns < before_ns:
                newest = quotes.popleft()
            if newest is not None:
                self._quote = _quote(newest)
            bar = completed.popleft() if completed and completed[0].bar_start_us == start else None
            rows.append(features.step(start, bar, self._quote))
            start = end


def _quote(ticker: BookTickerLike) -> Quote:
    return Quote(
        float(ticker.bid_price), float(ticker.bid_qty), float(ticker.ask_price),
        float(ticker.ask_qty),
    )  # fmt: skip
