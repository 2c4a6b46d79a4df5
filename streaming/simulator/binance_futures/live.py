"""Wall-clock publishing of the perpetual: the spot live feed's walk, futures frames out.

The perpetual of a symbol trades the synthetic tape of that symbol: the walk over the day tapes
(what is due, day changes) is :class:`~streaming.simulator.live.SyntheticLiveFeed`'s, and this
subclass renders each taker order as futures frames. Streams, per symbol ``sym``:

* ``sym@trade``: one frame per fill; ``sym@bookTicker``: one per taker order;
* ``sym@depth@0ms``: one diff per taker order; ``sym@depth@100ms``, ``sym@depth`` (250 ms) and
  ``sym@depth@500ms``: the book's changes since the stream's previous diff, checked on the feed's
  100 ms ticks (no diff for a window without changes). Each stream chains by ``pu``;
* ``sym@markPrice@1s`` every second and ``sym@markPrice`` every 3 s of the market clock
  (:mod:`streaming.simulator.binance_futures.funding`).

:meth:`FuturesLiveFeed.break_depth_chain` loses the next depth diff that some connection would
receive: the following diff of that stream names a ``pu`` its subscribers never saw, as after a
diff lost on the exchange's side, and a client must resynchronise.

A feed given a delay (:mod:`streaming.simulator.lead_lag`) shows the tape that far behind; the
mark price is then the model's on the tape as shown, at the time it is shown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from streaming.simulator import synthetic_book as book
from streaming.simulator.binance.streams import StreamHub
from streaming.simulator.binance_futures import payloads
from streaming.simulator.binance_futures.funding import PerpetualModel
from streaming.simulator.lead_lag import venue_day
from streaming.simulator.live import EVENT_LAG_MS, SyntheticLiveFeed
from streaming.simulator.live import _SymbolCursor as SymbolCursor
from streaming.simulator.synthetic import DayTape

DEPTH_INTERVALS_US: dict[str, int] = {
    "depth@100ms": 100_000,
    "depth": 250_000,
    "depth@500ms": 500_000,
}
"""The depth channels published on the feed's 100 ms ticks, and each one's update speed."""
IMMEDIATE_DEPTH = "depth@0ms"
MARK_CHANNELS: dict[str, int] = {"markPrice@1s": 1, "markPrice": 3}
"""The mark price channels and each one's period in seconds."""
_US_PER_S = 1_000_000
_MAX_MARK_CATCH_UP_S = 10  # seconds of marks sent at once after a stalled loop; older are skipped
_MARK_POLL_S = 0.05  # longest wall-clock sleep of the mark loop (the market clock may run fast)


class FuturesLiveFeed(SyntheticLiveFeed):
    """Publishes the perpetual's streams for ``symbols`` in real time (see the module)."""

    def __init__(
        self,
        symbols: Sequence[str],
        load_tape: Callable[[str, dt.date], Awaitable[DayTape]],
        clock_ns: Callable[[], int],
        applied: Counter[str] | None = None,
        delay_us: int = 0,
    ) -> None:
        super().__init__(symbols, load_tape, clock_ns, delay_us)
        self.model = PerpetualModel()
        self.applied: Counter[str] = Counter() if applied is None else applied
        self._depth_breaks = 0
        self._depth_sent: dict[str, book.BookState] = {}  # per stream: the book its last diff left
        self._depth_due_us: dict[str, int] = {}
        self._transact_ms: dict[str, int] = {}  # per symbol: the time of its last taker order

    @property
    def pending_depth_breaks(self) -> int:
        """Depth diffs still to be lost."""
        return self._depth_breaks

    def break_depth_chain(self, times: int = 1) -> None:
        """Lose the next ``times`` depth diffs that some connection would receive."""
        if times < 0:
            raise ValueError("times must be >= 0")
        self._depth_breaks += times

    async def run(self, hub: StreamHub) -> None:
        """Publish trades, tickers and depth (the spot feed's loop) and mark prices, until
        cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(super().run(hub))
            group.create_task(self._publish_marks(hub))

    async def _publish_order(self, hub: StreamHub, cursor: SymbolCursor, order: int) -> None:
        tape, prefix = cursor.tape, cursor.symbol.lower()
        first = int(tape.order_first_trade[order])
        transact_ms = int(tape.trade_time_us[first]) // 1000
        event_ms = transact_ms + EVENT_LAG_MS
        trade, ticker = f"{prefix}@trade", f"{prefix}@bookTicker"
        if hub.wants(trade):
            for index in range(first, first + int(tape.order_fill_count[order])):
                await hub.publish(trade, payloads.trade_json(tape, index, event_ms))
        before = cursor.book_state
        cursor.book_state = book.state_after(tape, order)  # advances with or without listeners
        self._transact_ms[cursor.symbol] = transact_ms
        if hub.wants(ticker):
            payload = payloads.book_ticker_json(
                tape.instrument, cursor.book_state, event_ms, transact_ms
            )
            await hub.publish(ticker, payload)
        depth = f"{prefix}@{IMMEDIATE_DEPTH}"
        if hub.wants(depth):
            payload = payloads.depth_update_json(
                tape.instrument, before, cursor.book_state, event_ms, transact_ms
            )
            await self._publish_diff(hub, depth, payload)

    async def _publish_depth(self, hub: StreamHub, cursor: SymbolCursor, now_us: int) -> None:
        after = cursor.book_state
        cursor.depth_state = after
        for channel, interval_us in DEPTH_INTERVALS_US.items():
            stream = f"{cursor.symbol.lower()}@{channel}"
            before = self._depth_sent.setdefault(stream, after)
            if now_us < self._depth_due_us.get(stream, 0) or after == before:
                continue  # not due yet, or nothing changed: Binance sends nothing
            self._depth_due_us[stream] = (now_us // interval_us + 1) * interval_us
            self._depth_sent[stream] = after  # the chain advances with or without listeners
            if hub.wants(stream):
                event_ms = now_us // 1000
                transact_ms = self._transact_ms.get(cursor.symbol, event_ms)
                payload = payloads.depth_update_json(
                    cursor.tape.instrument, before, after, event_ms, transact_ms
                )
                await self._publish_diff(hub, stream, payload)

    async def _publish_diff(self, hub: StreamHub, stream: str, payload: bytes) -> None:
        if self._depth_breaks > 0:
            self._depth_breaks -= 1
            self.applied["depth_chain_broken"] += 1
            return
        await hub.publish(stream, payload)

    async def _publish_marks(self, hub: StreamHub) -> None:
        """Every second of the market clock, the mark price of every symbol whose stream is
        wanted; seconds the loop fell far behind on are skipped."""
        next_s = self._clock_ns() // 1_000_000_000 + 1
        while True:
            now_ns = self._clock_ns()
            now_s = now_ns // 1_000_000_000
            if now_s - next_s >= _MAX_MARK_CATCH_UP_S:
                next_s = now_s - _MAX_MARK_CATCH_UP_S + 1
            while next_s <= now_s:
                await self._publish_mark_second(hub, next_s)
                next_s += 1
            ahead_s = (next_s * 1_000_000_000 - self._clock_ns()) / 1e9
            await asyncio.sleep(min(_MARK_POLL_S, max(0.0005, ahead_s)))

    async def _publish_mark_second(self, hub: StreamHub, second: int) -> None:
        time_us = second * _US_PER_S
        for symbol in self._symbols:
            prefix = symbol.lower()
            streams = [
                f"{prefix}@{channel}"
                for channel, period in MARK_CHANNELS.items()
                if second % period == 0 and hub.wants(f"{prefix}@{channel}")
            ]
            if not streams:
                continue
            tape = await self._load_tape(symbol, venue_day(time_us, self.delay_us))
            mark = self.model.mark_price(tape, time_us)
            payload = payloads.mark_price_json(
                tape.instrument.symbol, second * 1000, mark.mark_e8, mark.index_e8,
                mark.funding_rate_e8, mark.next_funding_ms,
            )  # fmt: skip
            for stream in streams:
                await hub.publish(stream, payload)
