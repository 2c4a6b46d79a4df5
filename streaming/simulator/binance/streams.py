"""WebSocket side of the simulator: subscriptions, fan-out, and the per-connection sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from streaming.simulator.binance.faults import ConnectionFaults, FaultInjector

log = logging.getLogger(__name__)
_CLOSE = None  # queue sentinel: finish sending what is queued, then close normally
_INVALID_REQUEST = '{"error":{"code":2,"msg":"Invalid request"}}'


def envelope(stream: str, data: bytes) -> bytes:
    """Combined-stream envelope exactly as Binance lays it out."""
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


@dataclass(eq=False)
class Subscriber:
    """A connection's subscriptions and its outgoing queue (bounded: slow readers push back)."""

    streams: set[str]
    combined: bool
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(50_000))


class StreamHub:
    """Fans published frames out to the connections subscribed to their stream."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._joined = asyncio.Event()
        self.connections_total = 0

    @property
    def subscriber_count(self) -> int:
        """Connections open now."""
        return len(self._subscribers)

    def add(self, subscriber: Subscriber) -> None:
        """Start delivering to a new connection."""
        self._subscribers.add(subscriber)
        self.connections_total += 1
        self._joined.set()

    def remove(self, subscriber: Subscriber) -> None:
        """Stop delivering to a connection and release a publisher blocked on its full queue."""
        self._subscribers.discard(subscriber)
        queue = subscriber.queue
        while not queue.empty():  # each get wakes one blocked put, which then lands harmlessly
            queue.get_nowait()

    def wants(self, stream: str) -> bool:
        """True when some connection is subscribed to ``stream``."""
        return any(stream in s.streams for s in self._subscribers)

    async def publish(self, stream: str, data: bytes, combined: bytes | None = None) -> None:
        """Queue ``data`` (raw) or its envelope (combined) for every subscriber of ``stream``."""
        for subscriber in list(self._subscribers):
            if stream in subscriber.streams and subscriber in self._subscribers:
                if subscriber.combined:
                    combined = combined or envelope(stream, data)
                    await subscriber.queue.put(combined)
                else:
                    await subscriber.queue.put(data)

    async def wait_for_subscribers(self, count: int) -> None:
        """Return once ``count`` connections have been made since the start."""
        while self.connections_total < count:
            self._joined.clear()
            await self._joined.wait()

    async def close_all(self) -> None:
        """Ask every connection to close once what is queued for it has been sent."""
        for subscriber in list(self._subscribers):
            if subscriber in self._subscribers:  # it may have gone while we waited on another
                await subscriber.queue.put(_CLOSE)


class StreamEndpoint:
    """aiohttp handlers for ``/stream?streams=a/b`` and ``/ws/<stream>``."""

    def __init__(self, hub: StreamHub, faults: FaultInjector, heartbeat: float | None) -> None:
        self._hub = hub
        self._faults = faults
        self._heartbeat = heartbeat
        self._open: set[web.WebSocketResponse] = set()

    async def combined(self, request: web.Request) -> web.StreamResponse:
        """``/stream?streams=a/b``: frames wrapped in ``{"stream", "data"}``."""
        names = [s for s in request.query.get("streams", "").split("/") if s]
        if not names:
            raise web.HTTPBadRequest(text='{"code":-1102,"msg":"No streams requested."}')
        return await self._serve(request, set(names), combined=True)

    async def raw(self, request: web.Request) -> web.StreamResponse:
        """``/ws/<stream>[/<stream>...]``: the bare payloads."""
        names = [s for s in request.match_info["streams"].split("/") if s]
        return await self._serve(request, set(names), combined=False)

    async def close_all(self) -> None:
        """Close every open connection (server shutdown)."""
        for ws in list(self._open):
            await ws.close(code=1001, message=b"server shutting down")

    async def _serve(
        self, request: web.Request, streams: set[str], combined: bool
    ) -> web.StreamResponse:
        rejection = self._faults.take_ws_handshake_fault()
        if rejection is not None:
            status, headers, body = rejection
            return web.Response(
                status=status, headers=headers, body=body, content_type="application/json"
            )
        ws = web.WebSocketResponse(heartbeat=self._heartbeat, max_msg_size=1 << 20)
        await ws.prepare(request)
        subscriber = Subscriber(streams, combined)
        self._hub.add(subscriber)
        self._open.add(ws)
        sender = asyncio.create_task(self._send_loop(request, ws, subscriber))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._answer_method(ws, subscriber, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self._hub.remove(subscriber)
            self._open.discard(ws)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _answer_method(self, ws: web.WebSocketResponse, sub: Subscriber, text: str) -> None:
        """Binance's live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS requests."""
        try:
            request = json.loads(text)
            method, params, request_id = request["method"], request.get("params", []), request["id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            method, params, request_id = None, [], None
        # Stream names must be strings: set.update would split a bare string into characters.
        names: list[str] = params if isinstance(params, list) else []
        if names is not params or not all(isinstance(p, str) for p in names):
            method = None
        result: object = None
        if method == "SUBSCRIBE":
            sub.streams.update(names)
        elif method == "UNSUBSCRIBE":
            sub.streams.difference_update(names)
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(sub.streams)
        else:
            await ws.send_str(_INVALID_REQUEST)
            return
        await ws.send_str(json.dumps({"result": result, "id": request_id}))

    async def _send_loop(
        self, request: web.Request, ws: web.WebSocketResponse, subscriber: Subscriber
    ) -> None:
        faults = ConnectionFaults(self._faults)
        try:
            while True:
                message = await subscriber.queue.get()
                if message is None:  # the close sentinel
                    for payload in faults.flush():
                        await ws.send_str(payload.decode("utf-8", errors="replace"))
                    await ws.close()
                    return
                if faults.should_drop():
                    # An abrupt network drop: no close frame, the client sees the socket die.
                    self._hub.remove(subscriber)
                    if request.transport is not None:
                        request.transport.abort()
                    return
                stall = faults.stall_seconds()
                if stall:
                    await asyncio.sleep(stall)
                for payload in faults.outgoing(message):
                    await ws.send_str(payload.decode("utf-8", errors="replace"))
        except (ConnectionResetError, RuntimeError) as error:
            log.debug("websocket sender stopped: %s", error)
