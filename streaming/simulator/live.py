"""Wall-clock streaming of the synthetic tape: trades whose time has come are published live.

The live feed walks the same deterministic day tapes the REST and bulk endpoints serve, so the
first live trade id follows the last trade id REST returned for an earlier time. A feed given a
delay walks the tapes as a venue that far behind shows them (:mod:`streaming.simulator.lead_lag`:
every time later by the delay, a day's tape kept until the delayed clock passes midnight).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streaming.simulator import synthetic_book as book
from streaming.simulator.binance.streams import StreamHub
from streaming.simulator.lead_lag import delayed_loader, venue_day
from streaming.simulator.synthetic import DayTape

log = logging.getLogger(__name__)
DEPTH_INTERVAL_US = 100_000
EVENT_LAG_MS = 1  # Binance stamps the event a little after the trade
START_WAIT_S = 60.0  # how long a depth snapshot waits for the feed's tapes to load


@dataclass
class _SymbolCursor:
    symbol: str
    tape: DayTape
    next_order: int
    book_state: book.BookState
    depth_state: book.BookState  # the state the last depth update left subscribers in

    @property
    def next_order_us(self) -> int | None:
        """Time of the next unpublished order of the tape, None past the day's last."""
        if self.next_order >= self.tape.order_count:
            return None
        return int(self.tape.trade_time_us[self.tape.order_first_trade[self.next_order]])


class SyntheticLiveFeed:
    """Publishes ``@trade``, ``@aggTrade``, ``@bookTicker`` and ``@depth@100ms`` in real time;
    ``delay_us`` behind the tape (0: as it happens)."""

    def __init__(
        self,
        symbols: Sequence[str],
        load_tape: Callable[[str, dt.date], Awaitable[DayTape]],
        clock_ns: Callable[[], int],
        delay_us: int = 0,
    ) -> None:
        self._symbols = [s.upper() for s in symbols]
        self._load_tape = delayed_loader(load_tape, delay_us)
        self._clock_ns = clock_ns
        self.delay_us = delay_us
        self._cursors: dict[str, _SymbolCursor] = {}
        self._started = asyncio.Event()

    async def depth_snapshot(self, symbol: str, limit: int) -> bytes | None:
        """``/api/v3/depth`` body of the book subscribers of the depth stream hold now: the
        state the last depth diff left them in, so the next diff continues it exactly (a book
        taken between two diffs would hold changes the next diff does not undo). A request
        that comes while the feed loads its tapes waits for it: the book as of that moment
        would not be the one its first diff starts from. None for a symbol it does not publish,
        or when the feed has not started within ``START_WAIT_S``.
        """
        try:
            await asyncio.wait_for(self._started.wait(), START_WAIT_S)
        except TimeoutError:
            log.warning("live feed not started after %g s: no live depth snapshot", START_WAIT_S)
            return None
        cursor = self._cursors.get(symbol.upper())
        if cursor is None:
            return None
        return book.snapshot_json(cursor.tape.instrument, cursor.depth_state, limit)

    async def _cursor(self, symbol: str, now_us: int) -> _SymbolCursor:
        tape = await self._load_tape(symbol, venue_day(now_us, self.delay_us))
        next_order = int(np.searchsorted(tape.order_time_us, now_us, side="right"))
        state = book.state_after(tape, next_order - 1)
        return _SymbolCursor(symbol, tape, next_order, state, state)

    async def run(self, hub: StreamHub) -> None:
        """Publish due orders as they come and depth diffs every 100 ms, until cancelled."""
        now_us = self._clock_ns() // 1000
        cursors = [await self._cursor(s, now_us) for s in self._symbols]
        self._cursors = {cursor.symbol: cursor for cursor in cursors}
        self._started.set()
        next_depth_us = (now_us // DEPTH_INTERVAL_US + 1) * DEPTH_INTERVAL_US
        while True:
            now_us = self._clock_ns() // 1000
            for cursor in cursors:
                await self._publish_due_orders(hub, cursor, now_us)
            if now_us >= next_depth_us:
                for cursor in cursors:
                    await self._publish_depth(hub, cursor, now_us)
                next_depth_us = (now_us // DEPTH_INTERVAL_US + 1) * DEPTH_INTERVAL_US
            wake_us = min([next_depth_us, *(c.next_order_us or next_depth_us for c in cursors)])
            await asyncio.sleep(max(0.0005, (wake_us - self._clock_ns() // 1000) / 1e6))

    async def _publish_due_orders(self, hub: StreamHub, cursor: _SymbolCursor, now_us: int) -> None:
        while True:
            order_us = cursor.next_order_us
            if order_us is None:
                if venue_day(now_us, self.delay_us) <= cursor.tape.day:
                    return
                cursor.tape = await self._load_tape(
                    cursor.symbol, cursor.tape.day + dt.timedelta(days=1)
                )
                cursor.next_order = 0
                continue
            if order_us > now_us:
                return
            await self._publish_order(hub, cursor, cursor.next_order)
            cursor.next_order += 1

    async def _publish_order(self, hub: StreamHub, cursor: _SymbolCursor, order: int) -> None:
        tape, prefix = cursor.tape, cursor.symbol.lower()
        first = int(tape.order_first_trade[order])
        event_ms = int(tape.trade_time_us[first]) // 1000 + EVENT_LAG_MS
        trade, agg_trade, ticker = f"{prefix}@trade", f"{prefix}@aggTrade", f"{prefix}@bookTicker"
        if hub.wants(trade):
            for index in range(first, first + int(tape.order_fill_count[order])):
                await hub.publish(trade, book.trade_json(tape, index, event_ms))
        if hub.wants(agg_trade):
            await hub.publish(agg_trade, book.agg_trade_json(tape, order, event_ms))
        cursor.book_state = book.state_after(tape, order)  # advances with or without listeners
        if hub.wants(ticker):
            await hub.publish(ticker, book.book_ticker_json(tape.instrument, cursor.book_state))

    async def _publish_depth(self, hub: StreamHub, cursor: _SymbolCursor, now_us: int) -> None:
        if cursor.book_state == cursor.depth_state:
            return  # Binance sends nothing for a 100 ms window without changes
        stream = f"{cursor.symbol.lower()}@depth@100ms"
        if hub.wants(stream):
            payload = book.depth_update_json(
                cursor.tape.instrument, cursor.depth_state, cursor.book_state, now_us // 1000
            )
            await hub.publish(stream, payload)
        cursor.depth_state = cursor.book_state
