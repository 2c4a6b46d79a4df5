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

from collections.abc import Callable, Mapping, Sequence

from streaming.fallback.decision import NS_PER_S, LiveSnapshot
from trading_assets.lib.features import DEFAULT_CONFIG, TRADE_GROUPS, FeatureConfig, LiveFeatures
from trading_assets.lib.features.cross_venue import CrossPair
from trading_assets.lib.features.cross_venue_live import LiveCrossFeatures
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
        # Every market message goes straight to the live features, which keep the newest
        # message's receive time and the newest row themselves.
        live = self.live
        self.on_trade: Callable[[TradeLike], list[FeatureRow]] = live.on_trade
        self.on_book_ticker: Callable[[BookTickerLike], list[FeatureRow]] = live.on_book_ticker
        # The symbol's cross group, when it has one. Both instruments come over their own
        # connections, whose trades may trail their other messages by seconds (the simulator's
        # Coinbase sends trades well behind its tickers), so the clock never closes a cross
        # second: one closes when both instruments' trades have moved past it, and a quiet
        # market holds the newest row back until they do.
        self.cross: LiveCrossFeatures | None = None

    @property
    def newest_row(self) -> FeatureRow | None:
        """The last row completed (by a message or the clock); None before the first."""
        return self.live.newest_row

    @property
    def last_message_ns(self) -> int | None:
        """Receive time of the newest trade or book ticker; None before the first."""
        return self.live.last_message_ns or None

    def advance(self, now_ns: int) -> list[FeatureRow]:
        """Close every interval over by ``close_delay`` before both the clock and the newest
        message (quiet seconds included), none while a trade gap is open; returns the rows
        that completed, which the caller pushes like the rows trades complete."""
        last_message_ns = self.last_message_ns
        if last_message_ns is None or (self.gap_open is not None and self.gap_open()):
            return []
        until_ns = min(now_ns, last_message_ns) - self.close_delay_ns
        return self.live.advance_to(until_ns // 1_000)

    def snapshot(self, now_ns: int) -> LiveSnapshot | None:
        """The newest row after :meth:`advance`; None before the first message or the first
        completed interval."""
        last_message_ns = self.last_message_ns
        if last_message_ns is None:
            return None
        self.advance(now_ns)
        row = self.newest_row
        if row is None:
            return None
        values = row.values
        cross = None if self.cross is None else self.cross.newest_row
        if cross is not None:  # its newest interval may trail the symbol's own by a second
            values = {**values, **cross.values}
        return LiveSnapshot(values, row.event_timestamp_us * 1_000, last_message_ns)


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


def cross_trackers(
    trackers: Mapping[str, LiveFeatureTracker],
    references: Mapping[str, str],
    config: FeatureConfig = DEFAULT_CONFIG,
) -> dict[str, LiveCrossFeatures]:
    """The live cross group of each own instrument of ``references`` ({own: reference}), fed by
    both instruments' trades and book tickers; each own tracker's snapshot carries it too."""
    found: dict[str, LiveCrossFeatures] = {}
    for own, reference in references.items():
        found[own] = trackers[own].cross = LiveCrossFeatures(CrossPair.of(own, reference), config)
    return found
