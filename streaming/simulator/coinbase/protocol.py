"""Coinbase Advanced Trade's market-data WebSocket over the synthetic market, at ``/coinbase``.

A client connects, then subscribes one channel a message, as on
``wss://advanced-trade-ws.coinbase.com``::

    {"type": "subscribe", "channel": "market_trades", "product_ids": ["BTC-USD", "ETH-USD"]}
    {"type": "subscribe", "channel": "heartbeats"}

and is answered as Coinbase answers (see :mod:`~streaming.simulator.coinbase.frames` for the
shapes):

- ``market_trades``: per product, a ``snapshot`` of its last 100 trades (newest first), then
  every trade in ``update`` events, collected over 250 ms of market time and sent together (one
  frame per product, newest first), as Coinbase documents;
- ``ticker``: per product a ``snapshot``, then an ``update`` after every taker order (Coinbase
  sends one every time a match happens);
- ``level2`` (frames on ``l2_data``): per product a ``snapshot`` of the book, then an ``update``
  with the levels each taker order changed. The snapshot holds the best 1,000 levels a side
  (Coinbase sends the whole book; the synthetic one reaches to the price of one tick). Each
  update carries every level that changed, so the book a client keeps is exact near the top;
  levels deeper than its snapshot stay unknown to it;
- ``heartbeats``: one frame a second; ``heartbeat_counter`` counts the seconds since the
  endpoint started, as Coinbase counts its server's, so it goes up by one per heartbeat;
- after each subscribe or unsubscribe, a ``subscriptions`` frame listing every channel and
  product the connection now has.

``sequence_num`` counts one connection's frames, all channels together, from 0 by one. A message
that cannot be served (an unknown channel, a product the simulator does not carry, bad JSON)
gets Coinbase's error, ``{"type":"error","message":"Failed to subscribe","reason":...}``, which
has no sequence number, and changes nothing. Frames are stamped with the simulator's clock, so a
sped-up market clock speeds the whole stream up; only heartbeats keep to wall-clock seconds.
Whatever the server's own source (a replay included), this endpoint serves the synthetic market,
``delay_us`` behind the tape (:mod:`~streaming.simulator.lead_lag`: trade, book and ticker times
later by the delay, snapshots those of the delayed clock; frames keep the server's clock).

Faults: the simulator's shared plan applies to these connections as to Binance's (drops, stalls,
malformed frames, rejected handshakes, ...); :mod:`~streaming.simulator.coinbase.faults` adds a
lost sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from streaming.simulator.binance.faults import ConnectionFaults, FaultInjector
from streaming.simulator.coinbase import frames
from streaming.simulator.coinbase.faults import CoinbaseFaultPlan, CoinbaseFaults
from streaming.simulator.coinbase.market import Order, ProductCursor, symbol_of
from streaming.simulator.lead_lag import TapeLoader, delayed_loader
from streaming.simulator.synthetic_book import ASK, BID

log = logging.getLogger(__name__)
PATH = "/coinbase"
FAULTS_PATH = "/_sim/coinbase/faults"
HEARTBEATS = "heartbeats"
CHANNELS = ("level2", "market_trades", "ticker", HEARTBEATS)
"""The channels served (Coinbase's ``candles``, ``status`` and ``ticker_batch`` are not)."""
FRAME_CHANNEL = {"level2": "l2_data"}
"""The ``channel`` a subscription's frames carry, where it is not the subscription's name."""
TRADES_SNAPSHOT = 100
BOOK_DEPTH = 1000
TRADES_BATCH_US = 250_000
MAX_SLEEP_S = 0.05  # the market clock may run faster than the wall clock: look often
MAX_QUEUED = 100_000  # frames a connection may fall behind before it is cut, as a slow reader
_FAILED = "Failed to subscribe"
Outgoing = tuple[str | None, str]
"""(channel, events) of a frame to number and send, or (None, text) for a message sent as is."""


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("coinbase connection task failed", exc_info=task.exception())


class CoinbaseEndpoint:
    """The ``/coinbase`` WebSocket handler and its fault plan, for ``app.add_routes``."""

    def __init__(
        self,
        symbols: Sequence[str],
        load_tape: TapeLoader,
        clock_ns: Callable[[], int],
        listing_date: dt.date,
        shared_faults: FaultInjector,
        heartbeat_seconds: float | None = 20.0,
        delay_us: int = 0,
    ) -> None:
        self.symbols = symbols
        """The synthetic symbols served (read at each subscription)."""
        self.delay_us = delay_us
        """How far behind the tape the products trade (:mod:`~streaming.simulator.lead_lag`)."""
        self.load_tape = delayed_loader(load_tape, delay_us)
        self.clock_ns = clock_ns
        self.listing_date = listing_date
        self.shared_faults = shared_faults
        self.faults = CoinbaseFaults()
        self.started_ns = time.monotonic_ns()
        """The origin of heartbeat counters."""
        self._heartbeat = heartbeat_seconds  # WebSocket pings, as the Binance endpoint sends
        self._open: set[web.WebSocketResponse] = set()
        self.connections_total = 0
        """Connections accepted since the start."""

    def routes(self) -> list[web.RouteDef]:
        """The WebSocket at :data:`PATH` and its fault plan at :data:`FAULTS_PATH`."""
        return [
            web.get(PATH, self.stream),
            web.get(FAULTS_PATH, self._get_faults),
            web.post(FAULTS_PATH, self._post_faults),
            web.delete(FAULTS_PATH, self._delete_faults),
        ]

    def set_faults(self, **changes: Any) -> CoinbaseFaultPlan:
        """Merge Coinbase fault settings (see :class:`CoinbaseFaultPlan`) into the plan."""
        return self.faults.update(**changes)

    def clear_faults(self) -> None:
        """Back to no Coinbase faults, counters reset."""
        self.faults.clear()

    async def close_all(self) -> None:
        """Close every open connection (server shutdown)."""
        for ws in list(self._open):
            await ws.close(code=1001, message=b"server shutting down")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """One client connection, until it closes."""
        rejection = self.shared_faults.take_ws_handshake_fault()
        if rejection is not None:
            status, headers, body = rejection
            return web.Response(
                status=status, headers=headers, body=body, content_type="application/json"
            )
        ws = web.WebSocketResponse(heartbeat=self._heartbeat, max_msg_size=1 << 20)
        await ws.prepare(request)
        connection = Connection(self, ws, request)
        self._open.add(ws)
        self.connections_total += 1
        tasks = [
            asyncio.create_task(connection.send_loop()),
            asyncio.create_task(connection.publish_loop()),
        ]
        for task in tasks:
            task.add_done_callback(_log_failure)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await connection.on_text(message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self._open.discard(ws)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return ws

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            self.faults.update(**changes)
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self.faults.as_dict())

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response(self.faults.as_dict())


class Connection:
    """One client's subscriptions, product cursors and outgoing frames.

    Three tasks share it on the event loop: the reader (:meth:`on_text`), the publisher
    (:meth:`publish_loop`) and the sender (:meth:`send_loop`). What the reader and the publisher
    do to the subscriptions, cursors and queue happens between awaits, so a snapshot and the
    updates after it always meet exactly.
    """

    def __init__(
        self, endpoint: CoinbaseEndpoint, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self._endpoint = endpoint
        self._ws = ws
        self._request = request
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()  # bounded by _enqueue
        self.subscriptions: dict[str, list[str]] = {}
        self.cursors: dict[str, ProductCursor] = {}
        self._pending: dict[str, list[str]] = {}  # product -> rendered trades, oldest first
        self._cut = False  # set once the connection was cut for falling behind

    # -- requests -------------------------------------------------------------------------------
    async def on_text(self, text: str) -> None:
        """Answer one subscribe or unsubscribe message."""
        try:
            kind, channel, products = self._request_of(text)
            if kind == "subscribe":
                await self._open_cursors(products)
        except _Refused as refused:
            self._enqueue(None, frames.error_message(_FAILED, str(refused)))
            return
        now_us = self._endpoint.clock_ns() // 1000
        subscribed = self.subscriptions.setdefault(channel, [])
        if kind == "subscribe":
            for product in products:
                self._snapshot(channel, product, now_us)
                if product not in subscribed:
                    subscribed.append(product)
        else:
            subscribed[:] = [p for p in subscribed if p not in products]
            for product in products:
                if channel == "market_trades":
                    self._pending.pop(product, None)
        if not subscribed:
            del self.subscriptions[channel]
        self._enqueue("subscriptions", frames.subscriptions_events(self.subscriptions))

    def _request_of(self, text: str) -> tuple[str, str, list[str]]:
        """(type, channel, product ids) of a message; raises _Refused."""
        try:
            message = json.loads(text)
        except ValueError:
            raise _Refused("the message is not JSON") from None
        if not isinstance(message, dict):
            raise _Refused("the message is not a JSON object")
        kind, channel = message.get("type"), message.get("channel")
        if kind not in ("subscribe", "unsubscribe"):
            raise _Refused(f"type {kind!r} is neither subscribe nor unsubscribe")
        if channel not in CHANNELS:
            raise _Refused(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        if channel == HEARTBEATS:  # the connection's, not a product's: product ids are ignored
            return kind, channel, [HEARTBEATS]
        products = message.get("product_ids")
        if not isinstance(products, list) or not products:
            raise _Refused("product_ids must be a non-empty list")
        for product in products:
            symbol = symbol_of(product) if isinstance(product, str) else None
            if symbol is None or symbol not in self._endpoint.symbols:
                raise _Refused(f"{product} is not a valid product")
        return kind, channel, list(dict.fromkeys(products))

    async def _open_cursors(self, products: list[str]) -> None:
        endpoint = self._endpoint
        for product in products:
            if product in self.cursors or product == HEARTBEATS:
                continue
            symbol = symbol_of(product)
            assert symbol is not None  # checked by _request_of
            now_us = endpoint.clock_ns() // 1000
            self.cursors[product] = await ProductCursor.open(
                product, symbol, now_us, endpoint.load_tape, endpoint.listing_date,
                endpoint.delay_us,
            )  # fmt: skip

    def _snapshot(self, channel: str, product: str, now_us: int) -> None:
        """Queue the snapshot a subscription to ``channel`` starts with (none for heartbeats)."""
        if channel == HEARTBEATS:
            return
        cursor = self.cursors[product]
        if channel == "market_trades":
            trades = cursor.recent_trades(TRADES_SNAPSHOT)
            rendered = [frames.trade_json(product, tape, index) for tape, index in trades]
            self._pending[product] = []  # every trade so far is in the snapshot
            self._enqueue(channel, frames.trades_events("snapshot", rendered))
        elif channel == "ticker":
            stats = cursor.stats(now_us, cursor.last_price_ticks())
            events = frames.ticker_events(
                "snapshot", product, cursor.instrument, cursor.state, stats
            )
            self._enqueue(channel, events)
        else:
            state = cursor.state
            bids = frames.book_levels(state, BID, BOOK_DEPTH)
            asks = frames.book_levels(state, ASK, BOOK_DEPTH)
            events = frames.level2_events(
                "snapshot", product, cursor.instrument, cursor.state_us * 1000, bids, asks
            )
            self._enqueue("l2_data", events)

    # -- publishing -----------------------------------------------------------------------------
    async def publish_loop(self) -> None:
        """Queue what the market does as it happens, until cancelled."""
        endpoint = self._endpoint
        next_flush_us = 0
        next_beat_s = self._monotonic_s() // 1 + 1
        while True:
            now_us = endpoint.clock_ns() // 1000
            for cursor in list(self.cursors.values()):
                await cursor.roll(now_us, endpoint.load_tape)
            now_us = endpoint.clock_ns() // 1000
            for product, cursor in list(self.cursors.items()):
                for order in cursor.due(now_us):
                    self._publish_order(product, cursor, order)
            if now_us >= next_flush_us:
                self._flush_trades()
                next_flush_us = (now_us // TRADES_BATCH_US + 1) * TRADES_BATCH_US
            elapsed_s = self._monotonic_s()
            if elapsed_s >= next_beat_s:
                if HEARTBEATS in self.subscriptions:
                    self._heartbeat(int(elapsed_s))
                next_beat_s = elapsed_s // 1 + 1
            await asyncio.sleep(self._sleep_s(now_us, next_flush_us, next_beat_s))

    def _sleep_s(self, now_us: int, next_flush_us: int, next_beat_s: float) -> float:
        wake_us = min(
            [next_flush_us, *(c.next_order_us or math.inf for c in self.cursors.values())]
        )
        market_s = (wake_us - now_us) / 1e6
        return max(0.001, min(MAX_SLEEP_S, market_s, next_beat_s - self._monotonic_s()))

    def _monotonic_s(self) -> float:
        return (time.monotonic_ns() - self._endpoint.started_ns) / 1e9

    def _publish_order(self, product: str, cursor: ProductCursor, order: Order) -> None:
        """Queue the level2 update and the ticker of one taker order; hold its trades back for
        the next trades batch."""
        subscriptions, inst = self.subscriptions, cursor.instrument
        if product in subscriptions.get("level2", ()):
            bids = frames.changed_levels(order.before, order.after, BID)
            asks = frames.changed_levels(order.before, order.after, ASK)
            events = frames.level2_events("update", product, inst, order.time_us * 1000, bids, asks)
            self._enqueue("l2_data", events)
        if product in subscriptions.get("market_trades", ()):
            tape = order.tape
            self._pending.setdefault(product, []).extend(
                frames.trade_json(product, tape, index) for index in order.fills
            )
        if product in subscriptions.get("ticker", ()):
            last = int(order.tape.trade_price_ticks[order.fills.start])
            stats = cursor.stats(order.time_us, last)
            self._enqueue(
                "ticker", frames.ticker_events("update", product, inst, order.after, stats)
            )

    def _flush_trades(self) -> None:
        for trades in self._pending.values():
            if trades:
                self._enqueue("market_trades", frames.trades_events("update", reversed(trades)))
                trades.clear()

    def _heartbeat(self, counter: int) -> None:
        monotonic_ns = time.monotonic_ns() - self._endpoint.started_ns
        events = frames.heartbeat_events(self._endpoint.clock_ns(), monotonic_ns, counter)
        self._enqueue(HEARTBEATS, events)

    def _enqueue(self, channel: str | None, body: str) -> None:
        if self._cut:
            return
        if self._queue.qsize() >= MAX_QUEUED:  # Coinbase cuts a client that cannot keep up
            log.warning("coinbase connection %d frames behind: cutting it", MAX_QUEUED)
            self._cut = True
            self._abort()
            return
        self._queue.put_nowait((channel, body))

    def _abort(self) -> None:
        """An abrupt network drop: no close frame, the client sees the socket die."""
        if self._request.transport is not None:
            self._request.transport.abort()

    # -- sending --------------------------------------------------------------------------------
    async def send_loop(self) -> None:
        """Number, stamp and send the queued frames, through the fault plans."""
        endpoint, ws = self._endpoint, self._ws
        shared = ConnectionFaults(endpoint.shared_faults)
        sequence = sent = 0
        skipped = False
        try:
            while True:
                channel, body = await self._queue.get()
                if shared.should_drop():
                    self._abort()
                    return
                stall = shared.stall_seconds()
                if stall:
                    await asyncio.sleep(stall)
                if channel is not None:
                    if not skipped and endpoint.faults.take_sequence_skip(sent):
                        sequence, skipped = sequence + 1, True
                    body = frames.frame(channel, endpoint.clock_ns(), sequence, body)
                    sequence += 1
                sent += 1
                for payload in shared.outgoing(body.encode()):
                    await ws.send_str(payload.decode("utf-8", errors="replace"))
        except (ConnectionResetError, RuntimeError) as error:
            log.debug("coinbase sender stopped: %s", error)


class _Refused(Exception):
    """A message the endpoint will not serve; its text is the error's ``reason``."""
