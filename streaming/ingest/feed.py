"""The sidecar's market-data feed: one resilient connection to one venue, gap-filled trades.

    async with MarketFeed(ws_url, rest_url, ["BTCUSDT"], venue=venue("binance"),
                          dead_letter_path=path, resume_from={"BTCUSDT": last_landed_id}) as feed:
        async for record in feed:        # Trade (contiguous ids per symbol), BookTicker, ...
            ...
        feed.stats                       # counters for metrics

Everything the venue decides comes from its :class:`~streaming.venues.base.Venue`: the URL and
the subscriptions sent once connected, the frame parser (one per connection), whether trade ids
count up by one, and its REST trade history. The connection is replaced when it drops, when the
server closes it, when nothing arrived for ``watchdog_s``, when the parser finds that the stream
lost its thread (a :class:`~streaming.venues.base.Resync`: a sequence gap, a book checksum
mismatch) and, proactively, after ``max_connection_s`` (Binance cuts every connection at 24 h).
Where trade ids count up by one, the trades missed meanwhile are fetched over REST by id after
every (re)connect; within a connection a missing id (a dead-lettered frame) is waited for
briefly, since the stream may reorder, and then fetched too. Ids REST cannot serve are skipped
and recorded in ``stats.unfilled_gaps``, so a REST outage degrades the tape instead of stopping
the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import cast

import websockets
from websockets.asyncio.client import ClientConnection

from streaming.ingest.backoff import Backoff
from streaming.ingest.connection import HandshakeRejected, open_stream
from streaming.ingest.deadletter import DeadLetterWriter
from streaming.ingest.sequencer import TradeSequencer
from streaming.ingest.stats import FeedStats, UnfilledGap
from streaming.records import BookTicker, MarketRecord, Trade
from streaming.venues import venue as venue_named
from streaming.venues.base import ParsedFrame, Resync, TradeHistory, Venue
from streaming.venues.errors import VenueParseError
from streaming.venues.retry import RetryPolicy

log = logging.getLogger(__name__)
RunStartHook = Callable[[Mapping[str, int]], Awaitable[None]]
"""Told each symbol's first trade id of the run before any of its trades is handed out."""


class _Reconnect(Exception):
    """Internal: the current connection is finished; ``cause`` names why."""

    def __init__(self, cause: str, failure: bool = True) -> None:
        super().__init__(cause)
        self.cause = cause
        self.failure = failure  # False for a planned reconnect: no backoff


class MarketFeed:
    """Async context manager and iterator over the parsed market records of ``symbols`` at
    ``venue`` (Binance spot when None).

    Where the venue's trade ids count up by one, trades come out per symbol with contiguous
    ids, ascending, each exactly once, starting after ``resume_from[symbol]`` when given (else
    at the first trade streamed); the first id of each symbol is awaited through
    ``on_run_start`` before its first trade (so that landing can record where the run began
    before any trade lands). Elsewhere trades come out as the stream sends them. BookTickers
    older than one already handed out are dropped. Frames that fail to parse are written to
    ``dead_letter_path`` (see :mod:`streaming.ingest.deadletter`) and the stream goes on.
    """

    def __init__(
        self,
        ws_base_url: str,
        rest_base_url: str,
        symbols: Sequence[str],
        *,
        dead_letter_path: str | os.PathLike[str],
        venue: Venue | None = None,
        resume_from: Mapping[str, int] | None = None,
        channels: Sequence[str] | None = None,
        watchdog_s: float = 30.0,
        max_connection_s: float = 23 * 3600.0,
        backoff: Backoff | None = None,
        reorder_window: int = 64,
        reorder_wait_s: float = 1.0,
        max_gap_fill: int = 100_000,
        rest_retry: RetryPolicy | None = None,
        api_key: str | None = None,
        ping_interval_s: float = 20.0,
        open_timeout_s: float = 10.0,
        on_run_start: RunStartHook | None = None,
    ) -> None:
        if watchdog_s <= 0 or max_connection_s <= 0 or reorder_wait_s < 0:
            raise ValueError("watchdog_s, max_connection_s must be > 0 and reorder_wait_s >= 0")
        self.venue = venue = venue or venue_named("binance")
        self.symbols = [venue.symbol(s) for s in symbols]
        self.channels = tuple(channels or venue.default_channels)
        self.url = venue.stream_url(ws_base_url, self.symbols, self.channels)
        self._subscriptions = venue.subscriptions(self.symbols, self.channels)
        self._sequenced = venue.contiguous_trade_ids
        self.stats = FeedStats()
        self.watchdog_s = watchdog_s
        self.max_connection_s = max_connection_s
        self.reorder_window = reorder_window
        self.reorder_wait_s = reorder_wait_s
        self.max_gap_fill = max_gap_fill
        self._backoff = backoff or Backoff()
        self._rest_base_url = rest_base_url
        self._rest_retry = rest_retry
        self._api_key = api_key
        self._ping_interval_s = ping_interval_s
        self._open_timeout_s = open_timeout_s
        self._dead_letter_path = dead_letter_path
        resume = {venue.symbol(k): v for k, v in (resume_from or {}).items()}
        if not self._sequenced:  # nothing to resume from, nor to announce
            resume = {}
        self._sequencers = {
            s: TradeSequencer(s, resume[s] + 1 if s in resume else None) for s in self.symbols
        }
        # Each symbol's first trade id of this run, announced to ``on_run_start`` before the
        # first of its trades is handed out: the resume points now, the others at their first.
        self.run_starts = {s: resume[s] + 1 for s in self.symbols if s in resume}
        self._unannounced = dict(self.run_starts)
        self._on_run_start = on_run_start
        self._book_update_ids: dict[str, int] = {}
        self._rest: TradeHistory | None = None
        self._parse: Callable[[bytes, int], ParsedFrame] = venue.parser(self.symbols).parse
        self._dead_letters: DeadLetterWriter | None = None
        self._records: AsyncGenerator[MarketRecord, None] | None = None
        self._connection: ClientConnection | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> MarketFeed:
        if self._sequenced:
            self._rest = self.venue.trade_history(
                self._rest_base_url, api_key=self._api_key, retry=self._rest_retry
            )
        self._dead_letters = DeadLetterWriter(self._dead_letter_path)
        self._records = self._run()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection, the REST client and the dead-letter file (idempotent)."""
        records, self._records = self._records, None
        if records is not None:
            await records.aclose()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        if self._rest is not None:
            await self._rest.aclose()
            self._rest = None
        if self._dead_letters is not None:
            self._dead_letters.close()
            self._dead_letters = None

    @property
    def connected(self) -> bool:
        """True while a stream connection is open."""
        return self._connection is not None

    def has_gap(self, symbol: str) -> bool:
        """True while trades of ``symbol`` are held back behind a missing id (waited for, or
        being fetched over REST): the trades released so far are not yet the whole tape."""
        sequencer = self._sequencers.get(symbol)
        return sequencer is not None and sequencer.pending_count > 0

    def __aiter__(self) -> MarketFeed:
        return self

    async def __anext__(self) -> MarketRecord:
        if self._records is None:
            raise RuntimeError("use `async with MarketFeed(...) as feed:` before iterating")
        return await anext(self._records)

    # -- connection loop ------------------------------------------------------------------------
    async def _run(self) -> AsyncGenerator[MarketRecord, None]:
        await self._announce_run_starts()
        while True:
            connection = await self._connect()
            self._connection = connection
            self._parse = self.venue.parser(self.symbols).parse  # one per connection
            self._book_update_ids.clear()  # a venue may count them per connection
            self.stats.connections_opened += 1
            reconnect: _Reconnect | None = None
            try:
                for message in self._subscriptions:
                    await connection.send(message)
                for sequencer in list(self._sequencers.values()):
                    if sequencer.next_id is not None:  # a restart or reconnect: catch up
                        for trade in await self._fill(sequencer, sequencer.next_id, None):
                            yield trade
                async with contextlib.aclosing(self._read(connection)) as records:
                    async for record in records:
                        yield record
            except _Reconnect as finished:
                reconnect = finished
            finally:
                self._connection = None
                await connection.close()
            if reconnect is not None:
                self.stats.reconnects[reconnect.cause] += 1
                log.warning("market feed reconnecting: %s", reconnect.cause)
                if reconnect.failure:
                    await asyncio.sleep(self._backoff.next_delay())

    async def _connect(self) -> ClientConnection:
        """Open the stream, waiting with backoff (and any Retry-After) between failures."""
        while True:
            try:
                return await open_stream(
                    self.url, self._open_timeout_s, self._ping_interval_s, self._ping_interval_s
                )
            except HandshakeRejected as rejected:
                cause = "rate_limited" if rejected.rate_limited else "connect_failed"
                retry_after = rejected.retry_after_s if rejected.rate_limited else None
            except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI):
                cause, retry_after = "connect_failed", None
            self.stats.reconnects[cause] += 1
            delay = self._backoff.next_delay(retry_after)
            log.warning("market feed connect failed (%s); retrying in %.2fs", cause, delay)
            await asyncio.sleep(delay)

    async def _read(self, connection: ClientConnection) -> AsyncGenerator[MarketRecord, None]:
        """Records from one connection until it must be replaced (raises _Reconnect)."""
        opened_s = last_frame_s = time.monotonic()
        proven = False  # backoff resets once a connection delivers, not merely opens
        while True:
            close_at = opened_s + self.max_connection_s
            quiet_at = last_frame_s + self.watchdog_s
            fill_at = self._next_gap_deadline()
            try:
                async with asyncio.timeout(min(close_at, quiet_at, fill_at) - time.monotonic()):
                    raw = await connection.recv(decode=False)
            except TimeoutError:
                now_s = time.monotonic()
                if now_s >= close_at:
                    raise _Reconnect("max_age", failure=False) from None
                if now_s >= quiet_at:
                    raise _Reconnect("watchdog") from None
                for trade in await self._fill_due_gaps():
                    yield trade
                continue
            except websockets.ConnectionClosedOK:
                raise _Reconnect("server_closed") from None
            except websockets.ConnectionClosedError:
                raise _Reconnect("dropped") from None
            receive_ns = time.time_ns()
            if not proven:
                self._backoff.reset()
                proven = True
            last_frame_s = time.monotonic()
            handled = self._handle(raw, receive_ns)
            if isinstance(handled, list):  # several records, or trades a gap held back, released
                if self._unannounced:
                    await self._announce_run_starts()
                for record in handled:
                    yield record
            elif handled is not None:
                yield handled
            for trade in await self._fill_due_gaps():
                yield trade

    # -- frames ---------------------------------------------------------------------------------
    def _handle(self, raw: bytes, receive_ns: int) -> MarketRecord | list[MarketRecord] | None:
        """The frame's records: one, several, or None (dead-lettered, a stale book ticker, a
        frame without market data); for a trade off its id sequence, the list of trades it
        released (often none). Raises _Reconnect when the venue's stream lost its thread."""
        self.stats.frames_received += 1
        try:
            parsed = self._parse(raw, receive_ns)
        except VenueParseError as error:
            assert self._dead_letters is not None
            self._dead_letters.write(raw, receive_ns, error)
            self.stats.frames_dead_lettered += 1
            return None
        except Resync as lost:
            log.warning("market feed resubscribing: %s", lost)
            raise _Reconnect(lost.cause) from lost
        # The usual cases in line, the rest by _one: a book ticker newer than the last one, and
        # a trade whose id is the very next one with no gap open.
        if type(parsed) is BookTicker:
            symbol, update_id = parsed.symbol, parsed.update_id
            if update_id > self._book_update_ids.get(symbol, -1):  # ids are >= 0
                self._book_update_ids[symbol] = update_id
                return parsed
        elif type(parsed) is Trade and self._sequenced:
            sequencer = self._sequencers.get(parsed.symbol)
            if sequencer is not None and sequencer.take_next(parsed):
                stats = self.stats
                stats.trades_from_stream += 1
                stats.trades_released += 1
                return parsed
        elif parsed is None:
            return None
        elif isinstance(parsed, list):
            return self._many(parsed)
        return self._one(parsed)

    def _many(self, records: list[MarketRecord]) -> list[MarketRecord]:
        kept: list[MarketRecord] = []
        for record in records:
            one = self._one(record)
            if isinstance(one, list):
                kept += one
            elif one is not None:
                kept.append(one)
        return kept

    def _one(self, record: MarketRecord) -> MarketRecord | list[MarketRecord] | None:
        stats = self.stats
        if type(record) is BookTicker:  # the most frequent first
            symbol, update_id = record.symbol, record.update_id
            if update_id <= self._book_update_ids.get(symbol, -1):  # ids are >= 0
                stats.book_tickers_stale += 1  # a repeat, or overtaken by a newer one
                return None
            self._book_update_ids[symbol] = update_id
        elif type(record) is Trade:
            if not self._sequenced:  # trades as the stream sends them
                stats.trades_from_stream += 1
                stats.trades_released += 1
                return record
            sequencer = self._sequencers.get(record.symbol) or self._sequencer(record.symbol)
            if sequencer.take_next(record):  # the usual case: the very next id, no gap open
                stats.trades_from_stream += 1
                stats.trades_released += 1
                return record
            if sequencer.next_id is None:  # the symbol's first trade of this run
                self.run_starts[record.symbol] = self._unannounced[record.symbol] = record.trade_id
            if sequencer.offer(record):
                stats.trades_from_stream += 1
            else:
                stats.trades_duplicate += 1
            return cast("list[MarketRecord]", self._released(sequencer.release()))
        return record

    async def _announce_run_starts(self) -> None:
        starts, self._unannounced = self._unannounced, {}
        if starts and self._on_run_start is not None:
            await self._on_run_start(starts)

    def _sequencer(self, symbol: str) -> TradeSequencer:
        if symbol not in self._sequencers:
            self._sequencers[symbol] = TradeSequencer(symbol)
        return self._sequencers[symbol]

    def _released(self, trades: list[Trade]) -> list[Trade]:
        self.stats.trades_pending = sum(s.pending_count for s in self._sequencers.values())
        self.stats.trades_released += len(trades)
        return trades

    # -- gaps -----------------------------------------------------------------------------------
    def _next_gap_deadline(self) -> float:
        opened = [s.gap_opened_s for s in self._sequencers.values() if s.gap_opened_s is not None]
        return min(opened) + self.reorder_wait_s if opened else math.inf

    async def _fill_due_gaps(self) -> list[Trade]:
        """Fetch the missing ids of gaps held too long or behind too many trades."""
        released: list[Trade] = []
        now_s = time.monotonic()
        for sequencer in self._sequencers.values():
            missing, opened_s = sequencer.missing(), sequencer.gap_opened_s
            if missing is None or opened_s is None:
                continue
            if sequencer.pending_count >= self.reorder_window or (
                now_s - opened_s >= self.reorder_wait_s
            ):
                released += await self._fill(sequencer, *missing)
        return released

    async def _fill(self, sequencer: TradeSequencer, first: int, last: int | None) -> list[Trade]:
        """Fetch ids ``first..last`` (``last`` None: up to now) over REST and release what can be.

        A bounded range REST cannot serve in full, or one larger than ``max_gap_fill``, is
        skipped and recorded, so trades behind it are not held back forever.
        """
        symbol, stats = sequencer.symbol, self.stats
        if last is not None and last - first + 1 > self.max_gap_fill:
            return self._skip(sequencer, first, last, "larger than max_gap_fill")
        if self._rest is None:
            if last is None:  # nothing to ask: the stream goes on from where it is
                return []
            return self._skip(sequencer, first, last, "the venue serves no trade history")
        stats.gap_fills += 1
        try:
            trades = await self._rest.trades(symbol, first, last, self.max_gap_fill)
        except self._rest.failures as error:
            stats.gap_fill_failures += 1
            log.error("gap fill %s %s..%s failed: %s", symbol, first, last, error)
            trades = []
        for trade in trades:
            if sequencer.offer(trade):
                stats.trades_gap_filled += 1
            else:
                stats.trades_duplicate += 1
        released = self._released(sequencer.release())
        if last is not None and sequencer.next_id is not None and sequencer.next_id <= last:
            released += self._skip(sequencer, sequencer.next_id, last, "not served by REST")
        return released

    def _skip(self, sequencer: TradeSequencer, first: int, last: int, reason: str) -> list[Trade]:
        log.error("market feed skips %s trades %s..%s: %s", sequencer.symbol, first, last, reason)
        self.stats.unfilled_gaps.append(UnfilledGap(sequencer.symbol, first, last, reason))
        self.stats.trades_skipped += last - first + 1
        return self._released(sequencer.skip_to(last + 1))
