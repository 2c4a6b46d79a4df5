"""Replays of a market tape through the sidecar's fallback path, on the predictor's clock.

What :class:`streaming.app.Sidecar` does per symbol, without sockets, threads or models: every
trade and book ticker goes to a :class:`LiveFeatureTracker` in receive order, the rows it
completes go to the online store, and every ``predict_every_s`` on the wall-clock grid (a little
after each boundary) the tracker closes quiet intervals and the :class:`FallbackController`
decides. The store is :class:`NewestRows` (each symbol's newest row, which is what the sidecar's
writer leaves in Feast and its reader returns, here visible at once) or any other with the same
two methods. The clock is the tape's receive time, so an hour replays in seconds and the same
tape gives the same levels every time.

Two tapes: the project's synthetic market as the simulator streams it (its own wire payloads
parsed by the venue parser) and recorded Binance sessions (``read_recording``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec

from streaming.fallback.controller import FallbackController
from streaming.fallback.decision import (
    NS_PER_S,
    FallbackBudgets,
    FallbackLevel,
    OnlineRead,
)
from streaming.fallback.live import LiveFeatureTracker, LiveFeatureTrackers
from streaming.recordings import read_recording
from streaming.records import BookTicker, Trade
from streaming.simulator import synthetic_book as book
from streaming.simulator.binance.streams import envelope
from streaming.simulator.live import EVENT_LAG_MS
from streaming.simulator.synthetic import SyntheticMarket, day_of_us, day_start_us
from streaming.venues.binance import parse_stream_frame
from trading_assets.lib.features import DEFAULT_CONFIG, TRADE_GROUPS, FeatureConfig, feature_names
from trading_assets.lib.features.incremental import FeatureRow

Message = Trade | BookTicker
PREDICT_OFFSET_S = 0.05
"""How far past each grid boundary the sidecar's predictor wakes (``Sidecar._predict_forever``)."""


def synthetic_messages(
    market: SyntheticMarket,
    symbol: str,
    start: dt.datetime,
    duration_s: float,
    latency_s: float = 0.002,
) -> Iterator[Message]:
    """The simulator's live stream of ``symbol`` from ``start``: per taker order its trades, then
    its book ticker, as the simulator publishes them, received ``latency_s`` after the order."""
    start_us = round(start.timestamp() * 1_000_000)
    end_us = start_us + round(duration_s * 1_000_000)
    latency_ns = round(latency_s * NS_PER_S)
    trade_stream, ticker_stream = f"{symbol.lower()}@trade", f"{symbol.lower()}@bookTicker"
    day = day_of_us(start_us)
    while day_start_us(day) < end_us:
        tape = market.tape(symbol, day)
        for order in range(tape.order_count):
            first = int(tape.order_first_trade[order])
            order_us = int(tape.trade_time_us[first])
            if order_us < start_us:
                continue
            if order_us >= end_us:
                return
            receive_ns = order_us * 1_000 + latency_ns
            event_ms = order_us // 1_000 + EVENT_LAG_MS
            for index in range(first, first + int(tape.order_fill_count[order])):
                payload = envelope(trade_stream, book.trade_json(tape, index, event_ms))
                yield _market_message(parse_stream_frame(payload, receive_ns))
            state = book.state_after(tape, order)
            payload = envelope(ticker_stream, book.book_ticker_json(tape.instrument, state))
            yield _market_message(parse_stream_frame(payload, receive_ns))
        day += dt.timedelta(days=1)


def recorded_messages(paths: Sequence[Path], symbol: str) -> Iterator[Message]:
    """The trades and book tickers of ``symbol`` in recorded Binance sessions, in file order."""
    wanted = (f"{symbol.lower()}@trade", f"{symbol.lower()}@bookTicker")
    for path in paths:
        for frame in read_recording(path):
            if frame.is_rest or not any(s.encode() in frame.payload[:48] for s in wanted):
                continue
            yield _market_message(parse_stream_frame(frame.payload, frame.receive_ns))


def _market_message(record: object) -> Message:
    if not isinstance(record, Trade | BookTicker):
        raise TypeError(f"not a trade or book ticker: {type(record).__name__}")
    return record


class NewestRows:
    """The online store as the sidecar's writer leaves it: each symbol's newest row."""

    def __init__(self) -> None:
        self.rows: dict[str, FeatureRow] = {}

    def push(self, rows: Iterable[FeatureRow]) -> None:
        """Keep the newest of ``rows`` per symbol (an older row does not overwrite a newer)."""
        for row in rows:
            held = self.rows.get(row.symbol)
            if held is None or held.event_timestamp_us <= row.event_timestamp_us:
                self.rows[row.symbol] = row

    def __call__(self, symbol: str) -> OnlineRead | None:
        row = self.rows.get(symbol)
        if row is None:
            return None
        return OnlineRead(row.values, row.event_timestamp_us * 1_000, 0.0)


class OnlineStore(Protocol):
    """Where completed rows go and the controller's online source reads them back."""

    def push(self, rows: Iterable[FeatureRow]) -> None: ...
    def __call__(self, symbol: str) -> OnlineRead | None: ...


@dataclass
class ReplayResult:
    """What one controller served over a replay, counted from its first level 1 decision on
    (before it the features warm up)."""

    timeline: list[tuple[int, FallbackLevel]] = field(default_factory=list)
    """Every decision's time (ns) and level, warm-up included."""
    span_s: float = 0.0
    decisions: int = 0
    changes: int = 0
    levels: Counter[FallbackLevel] = field(default_factory=Counter)
    _first_ns: int | None = field(default=None, repr=False)

    @property
    def changes_per_hour(self) -> float:
        """Level changes per hour of replay (0 for an empty one)."""
        return self.changes * 3_600 / self.span_s if self.span_s > 0 else 0.0

    def add(self, now_ns: int, level: FallbackLevel) -> None:
        """Count one decision."""
        previous = self.timeline[-1][1] if self.timeline else None
        self.timeline.append((now_ns, level))
        if self._first_ns is None:
            if level is not FallbackLevel.ONLINE:
                return
            self._first_ns = now_ns
        else:
            self.changes += level is not previous
        self.span_s = (now_ns - self._first_ns) / NS_PER_S
        self.decisions += 1
        self.levels[level] += 1


class FallbackReplay:
    """One symbol's tracker and online store, driven by a tape and the predictor's clock, and a
    controller per set of budgets deciding on the same reads (one read of the store per tick)."""

    def __init__(
        self,
        symbol: str,
        budgets: Sequence[FallbackBudgets],
        store: OnlineStore | None = None,
        config: FeatureConfig = DEFAULT_CONFIG,
        groups: Sequence[str] = TRADE_GROUPS,
        predict_every_s: float = 1.0,
    ) -> None:
        self.symbol = symbol
        self.tracker = LiveFeatureTracker(symbol, config, groups)
        self.store: OnlineStore = store if store is not None else NewestRows()
        self._read: OnlineRead | None = None
        live = LiveFeatureTrackers([self.tracker])
        self.controllers = [
            FallbackController(
                feature_names(config, groups),
                online=lambda _: self._read,
                live=live,
                budgets=b,
                config=config,
                last_message=live.last_message_ns,
            )
            for b in budgets
        ]
        self.results = [ReplayResult() for _ in budgets]
        self._period_ns = round(predict_every_s * NS_PER_S)
        self._next_tick_ns: int | None = None

    def run(self, messages: Iterable[Message]) -> list[ReplayResult]:
        """Feed every message, deciding on each predictor tick before it; one result per set of
        budgets, in their order."""
        tracker, push = self.tracker, self.store.push
        for message in messages:
            self.tick_until(message.receive_ns)
            if isinstance(message, Trade):
                push(tracker.on_trade(message))
            else:
                push(tracker.on_book_ticker(message))
        return self.results

    def tick_until(self, now_ns: int) -> None:
        """Run every predictor tick due before ``now_ns`` (the first call starts the grid)."""
        if self._next_tick_ns is None:
            offset_ns = round(PREDICT_OFFSET_S * NS_PER_S)
            self._next_tick_ns = now_ns - now_ns % self._period_ns + offset_ns
        while self._next_tick_ns < now_ns:
            self.decide(self._next_tick_ns)
            self._next_tick_ns += self._period_ns

    def decide(self, now_ns: int) -> None:
        """One predictor tick: close quiet intervals into the store, read it, decide."""
        self.store.push(self.tracker.advance(now_ns))
        self._read = self.store(self.symbol)
        for controller, result in zip(self.controllers, self.results, strict=True):
            result.add(now_ns, controller.decide(self.symbol, now_ns).level)


def stalled(messages: Iterable[Message], start_ns: int, duration_s: float) -> Iterator[Message]:
    """``messages`` with the feed stalled from ``start_ns`` for ``duration_s`` while its
    connection stays open: what would have arrived meanwhile arrives, in order, at the end."""
    end_ns = start_ns + round(duration_s * NS_PER_S)
    for message in messages:
        if start_ns <= message.receive_ns < end_ns:
            yield msgspec.structs.replace(message, receive_ns=end_ns)
        else:
            yield message
