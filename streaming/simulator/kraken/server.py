"""Kraken spot's WebSocket v2 over the synthetic market, as a piece any aiohttp app can mount.

    kraken = KrakenStreams(market, clock_ns, ["BTCUSDT", "ETHUSDT"])  # BTC/USD, ETH/USD
    app.add_routes(kraken.routes())          # ws://host:port/kraken/v2
    await kraken.start()                     # publishing, in the market time of clock_ns
    ...
    await kraken.stop()

A connection gets Kraken's ``status`` message, then answers to its requests: ``subscribe`` and
``unsubscribe`` (``params``: ``channel`` ``trade``, ``ticker`` or ``book``, ``symbol`` a list of
pairs, and ``snapshot``, ``depth``, ``event_trigger`` as Kraken takes them), one answer per
pair, each subscription's snapshot right after its answer (the trade channel's last 50 trades
when asked for, the ticker, the book at its depth), and ``ping`` (answered ``pong``). Once it
subscribed to anything, a ``heartbeat`` is sent after every second without another message.
What is published is :mod:`streaming.simulator.kraken.market`'s.

Faults: the simulator's :class:`FaultInjector` (pass the server's to share its plan and its
``/_sim/faults`` endpoint) breaks connections as it does Binance's: ``drop_after_messages``
aborts a connection, ``stall_after_messages`` / ``stall_seconds`` pauses it (heartbeats
included), ``malformed_every``, ``truncated_every``, ``duplicate_every``, ``reorder_every``,
``ws_429_next`` likewise. Kraken's own: :meth:`KrakenStreams.corrupt_checksums` makes the next
book update carry a wrong checksum, which a client must answer by subscribing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from streaming.simulator.binance.faults import ConnectionFaults, FaultInjector
from streaming.simulator.binance.streams import StreamHub, Subscriber
from streaming.simulator.history import MarketHistory
from streaming.simulator.kraken import frames
from streaming.simulator.kraken.frames import Pair, pair_of_symbol
from streaming.simulator.kraken.market import (
    BOOK_DEPTHS,
    TICKER_TRIGGERS,
    KrakenLiveFeed,
    PairMarket,
    book_snapshot_json,
    stream_name,
    ticker_json,
    trade_snapshot_json,
)
from streaming.simulator.synthetic import EPOCH_DAY, SyntheticMarket
from streaming.simulator.tape import DayTape

log = logging.getLogger(__name__)
PATH = "/kraken/v2"
CHANNELS = ("trade", "ticker", "book")
DEFAULT_DEPTH = 10
SNAPSHOT_BY_DEFAULT = {"trade": False, "ticker": True, "book": True}
_QUEUE_SIZE = 50_000


class KrakenHub(StreamHub):
    """A :class:`StreamHub` whose publishing never waits: a connection whose queue is full is
    cut off instead (``overflowed``), as Kraken drops clients that do not keep up. So one
    order's messages are published, and a subscription answered, without yielding."""

    def __init__(self) -> None:
        super().__init__()
        self.overflowed: set[Subscriber] = set()

    def offer(self, subscriber: Subscriber, data: bytes) -> None:
        """Queue ``data`` for one connection, or mark it overflowed."""
        if subscriber in self.overflowed:
            return
        try:
            subscriber.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("kraken simulator: a connection fell %s messages behind", _QUEUE_SIZE)
            self.overflowed.add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        super().remove(subscriber)
        self.overflowed.discard(subscriber)

    async def publish(self, stream: str, data: bytes, combined: bytes | None = None) -> None:
        for subscriber in self.subscribers(stream):
            self.offer(subscriber, data)

    def subscribers(self, stream: str) -> list[Subscriber]:
        """The connections subscribed to ``stream``."""
        return [s for s in self._subscribers if stream in s.streams]


@dataclass(eq=False)
class _Connection:
    """One client: its queue and streams (``subscriber``) and its subscriptions by (channel,
    pair), each with its option (the book's depth, the ticker's event trigger)."""

    subscriber: Subscriber
    subscriptions: dict[tuple[str, str], int | str | None] = field(default_factory=dict)


class KrakenStreams:
    """Kraken's v2 WebSocket at ``path`` over the synthetic ``market`` (see the module).

    ``symbols`` are the synthetic market's (the simulator's), each served as the Kraken pair
    :func:`~streaming.simulator.kraken.frames.pair_of_symbol` names (``BTCUSDT``: ``BTC/USD``;
    a symbol quoted in no currency it knows is not served); ``clock_ns`` is the market's clock.
    ``history``: the simulator's, whose lock guards the market's caches and whose listing date
    is the first day with trades; ``faults``: the simulator's fault plan; ``delay_us``: how far
    behind the tape the pairs trade (:mod:`~streaming.simulator.lead_lag`).
    """

    def __init__(
        self,
        market: SyntheticMarket,
        clock_ns: Callable[[], int] = time.time_ns,
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
        *,
        history: MarketHistory | None = None,
        faults: FaultInjector | None = None,
        path: str = PATH,
        heartbeat_interval_s: float = 1.0,
        delay_us: int = 0,
    ) -> None:
        self.market = market
        self.history = history or MarketHistory(market, EPOCH_DAY)
        self.path = path
        self.clock_ns = clock_ns
        self.faults = faults or FaultInjector()
        self.hub = KrakenHub()
        self.pairs: dict[str, Pair] = {}
        for symbol in symbols:
            name = pair_of_symbol(symbol)
            if name is not None:
                self.pairs[name] = Pair.of(name, market.instrument(symbol))
        self.feed = KrakenLiveFeed(
            self.pairs, self._load_tape, clock_ns, self.history.listing_date, delay_us
        )
        self.connections_total = 0
        self._heartbeat_s = heartbeat_interval_s
        self._open: set[web.WebSocketResponse] = set()
        self._task: asyncio.Task[None] | None = None

    def ws_url(self, server_ws_url: str) -> str:
        """The venue's WebSocket URL on a server whose base URL is ``server_ws_url``."""
        return server_ws_url.rstrip("/") + self.path

    def routes(self) -> list[web.RouteDef]:
        """The WebSocket route, to add to an aiohttp application."""
        return [web.get(self.path, self.serve)]

    @property
    def connections_open(self) -> int:
        """Connections open now."""
        return self.hub.subscriber_count

    def published(self, pair: str) -> PairMarket:
        """What has been published of ``pair`` (after :meth:`start`)."""
        return self.feed.markets[pair]

    def corrupt_checksums(self, count: int = 1) -> None:
        """Make the next ``count`` book updates (to every depth subscribed) carry a wrong
        checksum; ``feed.checksums_corrupted`` counts those sent."""
        self.feed.checksums_to_corrupt += count

    async def start(self) -> None:
        """Start publishing; returns once every pair's tapes are loaded (raises what stopped
        the publisher if it failed first)."""
        if self._task is not None:
            return
        self.feed.ready.clear()  # a restart: the markets are loaded anew
        self._task = task = asyncio.create_task(self.feed.run(self.hub))
        task.add_done_callback(_log_failure)
        ready = asyncio.create_task(self.feed.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            task.result()

    async def stop(self) -> None:
        """Stop publishing and close every connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for ws in list(self._open):
            await ws.close(code=1001, message=b"server shutting down")

    async def _load_tape(self, symbol: str, day: dt.date) -> DayTape:
        return await asyncio.to_thread(self.history.locked, self.market.tape, symbol, day)

    # -- connections ------------------------------------------------------------------------------
    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket handler (see the module's docstring)."""
        rejection = self.faults.take_ws_handshake_fault()
        if rejection is not None:
            status, headers, body = rejection
            return web.Response(
                status=status, headers=headers, body=body, content_type="application/json"
            )
        if self._task is None:
            raise web.HTTPServiceUnavailable(text="the Kraken streams are not started")
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        await self.feed.ready.wait()
        self.connections_total += 1
        subscriber = Subscriber(set(), combined=False, queue=asyncio.Queue(_QUEUE_SIZE))
        connection = _Connection(subscriber)
        self.hub.add(subscriber)
        self._open.add(ws)
        connection_id = (0x9E3779B97F4A7C15 * self.connections_total) % 2**64
        self.hub.offer(subscriber, frames.status_message(connection_id).encode())
        sender = asyncio.create_task(self._send_loop(request, ws, connection))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._answer(connection, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self.hub.remove(subscriber)
            self._open.discard(ws)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _send_loop(
        self, request: web.Request, ws: web.WebSocketResponse, connection: _Connection
    ) -> None:
        subscriber, faults = connection.subscriber, ConnectionFaults(self.faults)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._heartbeat_s):
                        message = await subscriber.queue.get()
                except TimeoutError:
                    if not connection.subscriptions:
                        continue
                    message = frames.HEARTBEAT.encode()
                if message is None:  # the hub's close sentinel
                    for payload in faults.flush():
                        await ws.send_str(payload.decode())
                    await ws.close()
                    return
                if faults.should_drop() or subscriber in self.hub.overflowed:
                    # An abrupt network drop: no close frame, the client sees the socket die.
                    self.hub.remove(subscriber)
                    if request.transport is not None:
                        request.transport.abort()
                    return
                stall = faults.stall_seconds()
                if stall:
                    await asyncio.sleep(stall)
                for payload in faults.outgoing(message):
                    await ws.send_str(payload.decode("utf-8", errors="replace"))
        except (ConnectionResetError, RuntimeError) as error:
            log.debug("kraken websocket sender stopped: %s", error)

    # -- requests ---------------------------------------------------------------------------------
    def _answer(self, connection: _Connection, text: str) -> None:
        """Answer one request. Never awaits, so that a subscription's snapshot and the first
        update after it are consecutive in the market's history."""
        time_in = self.clock_ns() // 1000
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self._reply(connection, None, time_in, error="Malformed request", req_id=None)
            return
        method, req_id = request.get("method"), request.get("req_id")
        req_id = req_id if isinstance(req_id, int) and not isinstance(req_id, bool) else None
        if method == "ping":
            answer = frames.method_answer(
                "pong", time_in, self.clock_ns() // 1000, req_id=req_id, success=False
            )
            self.hub.offer(connection.subscriber, answer.encode())
        elif method in ("subscribe", "unsubscribe"):
            params = request.get("params")
            self._subscription(connection, method, params, req_id, time_in)
        else:
            name = method if isinstance(method, str) else None
            self._reply(connection, name, time_in, error="Method not found", req_id=req_id)

    def _reply(
        self,
        connection: _Connection,
        method: str | None,
        time_in: int,
        *,
        req_id: int | None,
        result: dict[str, object] | None = None,
        error: str | None = None,
        symbol: str | None = None,
    ) -> None:
        answer = frames.method_answer(
            method, time_in, self.clock_ns() // 1000,
            result=result, error=error, symbol=symbol, req_id=req_id,
        )  # fmt: skip
        self.hub.offer(connection.subscriber, answer.encode())

    def _subscription(
        self, connection: _Connection, method: str, params: object, req_id: int | None, time_in: int
    ) -> None:
        """Subscribe or unsubscribe each pair of ``params``, answering for each."""
        reply = self._reply
        if not isinstance(params, dict):
            reply(connection, method, time_in, error="Missing params", req_id=req_id)
            return
        channel, pairs = params.get("channel"), params.get("symbol")
        options = _options(channel, params)
        if isinstance(options, str):
            reply(connection, method, time_in, error=options, req_id=req_id)
            return
        if not isinstance(pairs, list) or not pairs or not all(isinstance(p, str) for p in pairs):
            reply(connection, method, time_in, error="Must specify symbol", req_id=req_id)
            return
        assert isinstance(channel, str)
        option, snapshot = options
        for pair in pairs:
            key = (channel, pair)
            held = connection.subscriptions.get(key)
            refusal = None
            if pair not in self.pairs:
                refusal = "Currency pair not supported"
            elif method == "subscribe" and held is not None:
                refusal = "Already subscribed"
            elif method == "unsubscribe" and held is None:
                refusal = "Subscription Not Found"
            if refusal is not None:
                reply(connection, method, time_in, error=refusal, symbol=pair, req_id=req_id)
            elif held is None:
                result = _result(channel, pair, option) | {"snapshot": snapshot}
                reply(connection, method, time_in, result=result, req_id=req_id)
                if snapshot:
                    self._snapshot(connection, channel, pair, option)
                connection.subscriptions[key] = option
                connection.subscriber.streams.add(stream_name(channel, pair, option))
            else:
                del connection.subscriptions[key]
                connection.subscriber.streams.discard(stream_name(channel, pair, held))
                result = _result(channel, pair, held)
                reply(connection, method, time_in, result=result, req_id=req_id)

    def _snapshot(
        self, connection: _Connection, channel: str, pair: str, option: int | str | None
    ) -> None:
        market = self.feed.markets[pair]
        if channel == "trade":
            snapshot = trade_snapshot_json(market)
        elif channel == "ticker":
            snapshot = ticker_json(market, "snapshot")
        else:
            assert isinstance(option, int)
            snapshot = book_snapshot_json(market, option)
        self.hub.offer(connection.subscriber, snapshot.encode())


def _options(channel: object, params: dict[str, object]) -> tuple[int | str | None, bool] | str:
    """A subscription's option (the book's depth, the ticker's event trigger) and whether a
    snapshot is wanted, or the error to answer."""
    if channel not in CHANNELS:
        return "Channel not supported" if channel is not None else "Missing channel"
    assert isinstance(channel, str)
    snapshot = params.get("snapshot", SNAPSHOT_BY_DEFAULT[channel])
    if not isinstance(snapshot, bool):
        return "Invalid snapshot"
    if channel == "book":
        depth = params.get("depth", DEFAULT_DEPTH)
        if depth not in BOOK_DEPTHS or isinstance(depth, bool) or not isinstance(depth, int):
            return "Invalid depth"
        return depth, snapshot
    if channel == "ticker":
        trigger = params.get("event_trigger", "trades")
        if trigger not in TICKER_TRIGGERS or not isinstance(trigger, str):
            return "Invalid event_trigger"
        return trigger, snapshot
    return None, snapshot


def _result(channel: str, pair: str, option: int | str | None) -> dict[str, object]:
    """The ``result`` of an answer: the channel and pair, with the depth or event trigger."""
    result: dict[str, object] = {"channel": channel, "symbol": pair}
    if channel == "book":
        result["depth"] = option
    elif channel == "ticker":
        result["event_trigger"] = option
    return result


def _log_failure(task: asyncio.Task[None]) -> None:
    """A publisher that dies stops the streams: say so at once, not at shutdown."""
    if not task.cancelled() and task.exception() is not None:
        log.error("kraken simulator feed failed", exc_info=task.exception())
