"""Another venue's capture served again: its WebSocket frames, byte for byte, to each client that
subscribes, with faults on demand (a frame left out, a frame cut short, a connection dropped).

The venues that subscribe by message (Coinbase, Kraken) are replayed from cryptofeed-style
captures (``../shared/data/coinbase``, ``../shared/data/kraken``): a client connects, sends its
subscriptions, and then receives the capture's frames in their recorded order, paced by their
receive times divided by ``speed`` (``math.inf``: as fast as the client reads). Faults apply to
the first connection only, so a client that reconnects is served whole::

    async with CaptureReplayServer(path, faults=CaptureFaults(drop={40})) as server:
        ...  # connect to server.url; frame 40 is left out (a sequence gap)
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from streaming.recordings import RecordedFrame, read_recording, recording_exchange

SUBSCRIBE_WAIT_S = 5.0  # how long a connection may take to send its first subscription
SUBSCRIBE_QUIET_S = 0.05  # subscriptions are over once the client has been quiet this long


@dataclass(frozen=True)
class CaptureFaults:
    """Faults of the first connection, by the index of a frame among the capture's frames."""

    drop: frozenset[int] = frozenset()
    """Frames left out (a sequence gap, a book update missed)."""
    cut: frozenset[int] = frozenset()
    """Frames sent cut to half their bytes (malformed)."""
    close_after: int | None = None
    """Close the connection once this many frames were sent."""


@dataclass
class CaptureReplayServer:
    """Serves ``path``'s WebSocket frames on ``url`` to every client that subscribes."""

    path: str | Path
    speed: float = math.inf
    faults: CaptureFaults = field(default_factory=CaptureFaults)
    host: str = "127.0.0.1"
    port: int = 0
    frames: list[RecordedFrame] = field(init=False)
    exchange: str | None = field(init=False)
    subscriptions: list[list[str]] = field(init=False, default_factory=list)
    """What each connection sent before its frames, one list per connection in order."""
    _server: Server | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.frames = [frame for frame in read_recording(self.path) if not frame.is_rest]
        self.exchange = recording_exchange(self.path)
        if self.speed <= 0:
            raise ValueError("speed must be > 0")

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    async def start(self) -> None:
        self._server = await serve(self._serve, self.host, self.port, max_size=None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> CaptureReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve(self, connection: ServerConnection) -> None:
        faults = self.faults if not self.subscriptions else CaptureFaults()
        sent: list[str] = []
        self.subscriptions.append(sent)
        try:
            await self._await_subscriptions(connection, sent)
            await self._replay(connection, faults)
            await connection.wait_closed()
        except ConnectionClosed:
            return

    @staticmethod
    async def _await_subscriptions(connection: ServerConnection, sent: list[str]) -> None:
        timeout = SUBSCRIBE_WAIT_S
        while True:
            try:
                async with asyncio.timeout(timeout):
                    message = await connection.recv()
            except TimeoutError:
                return
            sent.append(message if isinstance(message, str) else message.decode())
            timeout = SUBSCRIBE_QUIET_S

    async def _replay(self, connection: ServerConnection, faults: CaptureFaults) -> None:
        if not self.frames:
            return
        loop = asyncio.get_running_loop()
        started_s, first_ns = loop.time(), self.frames[0].receive_ns
        for index, frame in enumerate(self.frames):
            if faults.close_after is not None and index >= faults.close_after:
                await connection.close()
                return
            if index in faults.drop:
                continue
            if not math.isinf(self.speed):
                due_s = started_s + (frame.receive_ns - first_ns) / 1e9 / self.speed
                await asyncio.sleep(max(0.0, due_s - loop.time()))
            payload = frame.payload
            if index in faults.cut:
                payload = payload[: len(payload) // 2]
            await connection.send(payload.decode(errors="ignore"))
