"""The sidecar's in-memory features per symbol, readable by the fallback controller (level 2).

A :class:`LiveFeatureTracker` wraps one :class:`~trading_assets.lib.features.LiveFeatures`, fed
by every trade and book ticker of its symbol, and remembers its newest row and newest message.
When asked for a snapshot it first closes quiet intervals by the caller's clock, held back by
``close_delay_s`` so that a trade whose exchange time trails the host clock a little still lands
in its own interval instead of being dropped as late.

The clock closes an interval only once the stream has shown it is over: a message received
at least ``close_delay_s`` after the interval's end, on the one connection that carries the
symbol's trades in order. A quiet market still sends book tickers, so its seconds close as empty
bars, as they should. A stalled feed sends nothing, and its seconds stay open: they are unknown
rather than empty, and the trades a reconnect fetches for them over REST land in their own
seconds instead of being dropped as late. The same holds while the feed waits for (or fetches) a
missing trade id: ``gap_open`` says so, and nothing closes by the clock until the gap is filled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from streaming.fallback.decision import NS_PER_S, LiveSnapshot
from trading_assets.lib.features import DEFAULT_CONFIG, TRADE_GROUPS, FeatureConfig, LiveFeatures
from trading_assets.lib.features.incremental import FeatureRow
from trading_assets.lib.features.live import BookTickerLike, TradeLike


class LiveFeatureTracker:
    """One symbol's live features plus what the fallback needs to judge their freshness."""

    def __init__(
        self,
        symbol: str,
        config: FeatureConfig = DEFAULT_CONFIG,
        groups: Sequence[str] = TRADE_GROUPS,
        bar_s: int = 1,
        close_delay_s: float = 0.25,
        gap_open: Callable[[], bool] | None = None,
    ) -> None:
        self.symbol = symbol
        self.live = LiveFeatures(symbol, config, groups, bar_s)
        self.close_delay_ns = round(close_delay_s * NS_PER_S)
        self.gap_open = gap_open
        self.newest_row: FeatureRow | None = None
        self.last_message_ns: int | None = None

    # on_trade and on_book_ticker inline their bookkeeping: they run for every market message.
    def on_trade(self, trade: TradeLike) -> list[FeatureRow]:
        """Feed one trade; returns the rows it completed."""
        receive_ns, last = trade.receive_ns, self.last_message_ns
        if last is None or receive_ns > last:
            self.last_message_ns = receive_ns
        rows = self.live.on_trade(trade)
        if rows:
            self.newest_row = rows[-1]
        return rows

    def on_book_ticker(self, ticker: BookTickerLike) -> list[FeatureRow]:
        """Feed one book ticker; returns the rows it completed."""
        receive_ns, last = ticker.receive_ns, self.last_message_ns
        if last is None or receive_ns > last:
            self.last_message_ns = receive_ns
        rows = self.live.on_book_ticker(ticker)
        if rows:
            self.newest_row = rows[-1]
        return rows

    def advance(self, now_ns: int) -> list[FeatureRow]:
        """Close every interval over by ``close_delay`` before both the clock and the newest
        message (quiet seconds included), none while a trade gap is open; returns the rows
        that completed, which the caller pushes like the rows trades complete."""
        if self.last_message_ns is None or (self.gap_open is not None and self.gap_open()):
            return []
        until_ns = min(now_ns, self.last_message_ns) - self.close_delay_ns
        return self._keep(self.live.advance_to(until_ns // 1_000))

    def snapshot(self, now_ns: int) -> LiveSnapshot | None:
        """The newest row after :meth:`advance`; None before the first message or the first
        completed interval."""
        if self.last_message_ns is None:
            return None
        self.advance(now_ns)
        row = self.newest_row
        if row is None:
            return None
        return LiveSnapshot(row.values, row.event_timestamp_us * 1_000, self.last_message_ns)

    def _keep(self, rows: list[FeatureRow]) -> list[FeatureRow]:
        if rows:
            self.newest_row = rows[-1]
        return rows


class LiveFeatureTrackers:
    """Trackers by symbol, callable as the controller's :data:`LiveSource`."""

    def __init__(self, trackers: Sequence[LiveFeatureTracker] = ()) -> None:
        self.by_symbol = {tracker.symbol: tracker for tracker in trackers}

    def __call__(self, symbol: str, now_ns: int) -> LiveSnapshot | None:
        """The symbol's snapshot (None when it has no tracker, e.g. right after a restart)."""
        tracker = self.by_symbol.get(symbol)
        return None if tracker is None else tracker.snapshot(now_ns)

    def last_message_ns(self, symbol: str) -> int | None:
        """Receive time of the symbol's newest trade or book ticker (the controller's
        :data:`~streaming.fallback.decision.LastMessageSource`); None before the first."""
        tracker = self.by_symbol.get(symbol)
        return None if tracker is None else tracker.last_message_ns
