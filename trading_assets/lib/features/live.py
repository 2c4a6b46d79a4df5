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

from collections import deque
from collections.abc import Sequence
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


class BarBuilder:
    """Bars of one symbol from its trades in trade-id order (exact sums, like silver → bars)."""

    def __init__(self, symbol: str, bar_s: int = 1) -> None:
        self.symbol = symbol
        self._bar_us = bar_s * US_PER_SECOND
        self._start_us: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._open = self._high = self._low = self._close = ""
        self._high_units = self._low_units = 0
        self._volume = self._notional = self._buy = self._count = 0
        self._first_id = self._last_id = 0

    @property
    def open_bar_start_us(self) -> int | None:
        """Start of the bar being built (None when none is open)."""
        return self._start_us

    def add(
        self, trade_id: int, price: str, qty: str, is_buyer_maker: bool, time_us: int
    ) -> Bar | None:
        """Add a trade; returns the bar it completed when it opens a later interval."""
        start = time_us - time_us % self._bar_us
        completed = None
        if start != self._start_us:
            if self._start_us is not None and start < self._start_us:
                raise ValueError(f"trade {trade_id} at {time_us} is before the open bar")
            completed = self.close()
            self._start_us = start
            self._open, self._first_id = price, trade_id
        price_units, qty_units = decimal_units(price), decimal_units(qty)
        if self._count == 0 or price_units > self._high_units:
            self._high, self._high_units = price, price_units
        if self._count == 0 or price_units < self._low_units:
            self._low, self._low_units = price, price_units
        self._close, self._last_id = price, trade_id
        self._volume += qty_units
        self._notional += price_units * qty_units
        if not is_buyer_maker:  # a buyer-maker trade is a taker sell
            self._buy += qty_units
        self._count += 1
        return completed

    def close(self) -> Bar | None:
        """Complete the open bar now (end of input, or its interval is over by the clock)."""
        if self._start_us is None or self._count == 0:
            return None
        volume = self._volume
        bar = Bar(
            self.symbol, self._start_us, float(self._open), float(self._high),
            float(self._low), float(self._close), volume / UNITS_PER_ONE,
            self._notional / _NOTIONAL_SCALE, self._buy / UNITS_PER_ONE,
            (volume - self._buy) / UNITS_PER_ONE, self._count, self._first_id, self._last_id,
        )  # fmt: skip
        self._start_us = None
        self._reset()
        return bar


class LiveFeatures:
    """Features of one symbol from its live trades and book tickers (see the module docstring)."""

    def __init__(
        self,
        symbol: str,
        config: FeatureConfig = DEFAULT_CONFIG,
        groups: Sequence[str] = TRADE_GROUPS,
        bar_s: int = 1,
    ) -> None:
        self.features = IncrementalFeatures(symbol, config, groups, bar_s)
        self.bars = BarBuilder(symbol, bar_s)
        self._bar_us = bar_s * US_PER_SECOND
        self._uses_book = BOOK in self.features.groups
        self._completed: deque[Bar] = deque()
        # Tickers are kept as received and only the last one before each interval's end is
        # converted to a Quote: most are superseded within their interval.
        self._quotes: deque[tuple[int, BookTickerLike]] = deque()
        self._quote: Quote | None = None
        # Where _emit stopped: an interval whose trades are all in and which waits only for a
        # message received after its end (``None``: it waits for trades or the clock instead).
        self._book_wait_end_us: int | None = None
        self._complete_until_us = 0  # every interval ending at or before this has all its trades
        self._emitted_until_us: int | None = None  # what the last _emit was asked to complete
        self._received_us = 0  # newest local receive time seen
        self.late_trades = 0

    @property
    def quote(self) -> Quote | None:
        """The book as of the last emitted interval."""
        return self._quote

    def on_trade(self, trade: TradeLike) -> list[FeatureRow]:
        """Take one trade; returns the rows of every interval this completed (often none)."""
        received_us = trade.receive_ns // 1000
        if received_us > self._received_us:
            self._received_us = received_us
        time_us = trade.trade_ns // 1000
        if time_us - time_us % self._bar_us + self._bar_us <= self._complete_until_us:
            self.late_trades += 1
            return self._emit(self._complete_until_us)
        bar = self.bars.add(
            trade.trade_id, trade.price, trade.quantity, trade.is_buyer_maker, time_us
        )
        complete_until_us = self._complete_until_us
        if bar is not None:
            self._completed.append(bar)
        elif (
            time_us - time_us % self._bar_us <= complete_until_us == self._emitted_until_us
            and self._book_wait_end_us is None
        ):
            # Most trades: no bar completed, nothing newly complete since the last _emit, which
            # did not stop to wait for a message: it would stop where it did, with no rows.
            return []
        self._complete_until_us = max(complete_until_us, time_us - time_us % self._bar_us)
        return self._emit(self._complete_until_us)

    def on_book_ticker(self, ticker: BookTickerLike) -> list[FeatureRow]:
        """Take one book ticker; returns the rows of every interval this completed."""
        time_us = ticker.receive_ns // 1000
        if time_us > self._received_us:
            self._received_us = time_us
        if self._uses_book:
            self._quotes.append((time_us, ticker))
            if len(self._quotes) > MAX_PENDING_QUOTES:
                # No interval has closed for a long while (no trades yet): fold the oldest into
                # the current book so memory stays bounded; only the newest at a close matters.
                self._quote = _quote(self._quotes.popleft()[1])
        wait_end = self._book_wait_end_us
        if wait_end is None or self._received_us <= wait_end:
            return []  # a ticker completes an interval only by arriving after its end
        return self._emit(self._complete_until_us)

    def advance_to(self, time_us: int) -> list[FeatureRow]:
        """Close every interval ending at or before ``time_us`` by the caller's clock."""
        open_start = self.bars.open_bar_start_us
        if open_start is not None and open_start + self._bar_us <= time_us:
            self._close_open_bar()
        self._received_us = max(self._received_us, time_us + 1)
        self._complete_until_us = max(self._complete_until_us, time_us)
        return self._emit(time_us)

    def flush(self) -> list[FeatureRow]:
        """End of input: close the open bar and emit every interval up to it."""
        self._close_open_bar()
        if not self._completed:
            return []
        end = self._completed[-1].bar_start_us + self._bar_us
        self._received_us = max(self._received_us, end + 1)
        self._complete_until_us = max(self._complete_until_us, end)
        return self._emit(end)

    def _close_open_bar(self) -> None:
        bar = self.bars.close()
        if bar is not None:
            self._completed.append(bar)

    def _emit(self, complete_until_us: int) -> list[FeatureRow]:
        self._emitted_until_us = complete_until_us
        rows: list[FeatureRow] = []
        features, completed, quotes = self.features, self._completed, self._quotes
        self._book_wait_end_us = None
        start = features.next_bar_start_us
        if start is None:
            if not completed:
                return rows
            start = completed[0].bar_start_us
        while True:
            end = start + self._bar_us
            if end > complete_until_us:
                return rows
            if self._uses_book and self._received_us <= end:
                self._book_wait_end_us = end
                return rows
            newest = None
            while quotes and quotes[0][0] <= end:
                newest = quotes.popleft()[1]
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
