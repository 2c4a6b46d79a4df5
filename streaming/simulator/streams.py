"""WebSocket side of the simulator: subscriptions, fan-out, and the per-connection sender."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from streaming.simulator.faults import ConnectionFaults, FaultInjector

log = logging.getLogger(__name__)
_CLOSE = None  # queue sentinel: finish sending what is queued, then close normally


def envelope(stream: str, data: bytes) -> bytes:
    """Combined-stream envelope exactly as Binance lays it out."""
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


@dataclass(eq=False)
class Subscriber:
    streams: set[str]
    combined: bool
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(50_000))


class StreamHub:
    """Fans published frames out to the connections subscribed to their stream."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self.connections_total = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)
        self.connections_total += 1

    def remove(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def wants(self, stream: str) -> bool:
        return any(stream in s.streams for s in self._subscribers)

    async def publish(self, stream: str, data: bytes, combined: bytes | None = None) -> None:
        """Queue ``data`` (raw) or its envelope (combined) for every subscriber of ``stream``."""
        for subscriber in list(self._subscribers):
            if stream in subscriber.streams:
                payload = (combined or envelope(stream, data)) if subscriber.combined else data
                await subscriber.queue.put(payload)

    async def wait_for_subscribers(self, count: int) -> None:
        while self.connections_total < count:
            await asyncio.sleep(0.005)

    def close_all(self) -> None:
        """Ask every connection to close once its queue is drained."""
        for subscriber in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.queue.put_nowait(_CLOSE)


class StreamEndpoint:
    """aiohttp handlers for ``/stream?streams=a/b`` and ``/ws/<stream>``."""

    def __init__(self, hub: StreamHub, faults: FaultInjector, heartbeat: float | None) -> None:
        self._hub = hub
        self._faults = faults
        self._heartbeat = heartbeat
        self._open: set[web.WebSocketResponse] = set()

    async def combined(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.query.get("streams", "").split("/") if s]
        if not names:
            raise web.HTTPBadRequest(text='{"code":-1102,"msg":"No streams requested."}')
        return await self._serve(request, set(names), combined=True)

    async def raw(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.match_info["streams"].split("/") if s]
        return await self._serve(request, set(names), combined=False)

    async def close_all(self) -> None:
        for ws in list(self._open):
            await ws.close(code=1001, message=b"server shutting down")

    async def _serve(
        self, request: web.Request, streams: set[str], combined: bool
    ) -> web.StreamResponse:
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
        except (ValueError, KeyError, TypeError):
            await ws.send_str('{"error":{"code":2,"msg":"Invalid request"}}')
            return
        if method == "SUBSCRIBE":
            sub.streams.update(params)
            result: object = None
        elif method == "UNSUBSCRIBE":
            sub.streams.difference_update(params)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(sub.streams)
        else:
            await ws.send_str(json.dumps({"error": {"code": 2, "msg": "Invalid request"}}))
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
