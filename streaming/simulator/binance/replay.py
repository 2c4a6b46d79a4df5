"""Replay of recorded Binance sessions: WS frames byte for byte, REST depth snapshots by symbol."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from streaming.recordings import (
    RecordedFrame,
    RecordingError,
    read_recording,
    recording_exchange,
)
from streaming.simulator.binance.streams import StreamHub

log = logging.getLogger(__name__)
_STREAM_PREFIX = b'{"stream":"'
_DATA_KEY = b',"data":'


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """A recorded combined-stream frame, split without re-encoding."""

    stream: str
    data: bytes  # the envelope's "data" value, sliced out of the payload (never re-encoded)
    envelope: bytes


def split_envelope(payload: bytes) -> StreamFrame | None:
    """Stream name and data part of a combined-stream frame, or ``None`` if it is not one."""
    if not payload.startswith(_STREAM_PREFIX):
        return None
    name_end = payload.find(b'"', len(_STREAM_PREFIX))
    data_start = payload.find(_DATA_KEY, name_end) if name_end >= 0 else -1
    data_end = payload.rfind(b"}")
    if data_start < 0 or data_end < data_start:  # a cut-off line in the recording
        return None
    data = payload[data_start + len(_DATA_KEY) : data_end]
    return StreamFrame(payload[len(_STREAM_PREFIX) : name_end].decode(), data, payload)


def _symbol_of(frame: RecordedFrame, last_stream_symbol: str | None) -> str | None:
    query = parse_qs(urlsplit(frame.source).query)
    if "symbol" in query:
        return query["symbol"][0].upper()
    return last_stream_symbol  # hftbacktest files hold one symbol and omit it from the REST line


class RecordingReplay:
    """Publishes a recording's WS frames to a hub at N× speed (0 = as fast as clients read)."""

    def __init__(self, paths: Sequence[str | Path], speed: float = 1.0) -> None:
        self.paths = [Path(p) for p in paths]
        for path in self.paths:
            exchange = recording_exchange(path)
            if exchange not in (None, "BINANCE"):
                raise RecordingError(
                    f"{path} is a capture of {exchange}: the simulator replays Binance's protocol"
                )
        self.speed = speed
        self.depth_snapshots: dict[str, bytes] = {}
        self.symbols: set[str] = set()
        self.frames_published = 0
        self.done = asyncio.Event()

    def frames(self) -> Iterator[RecordedFrame]:
        """Every frame of the recordings, in order (read from disk on each call)."""
        for path in self.paths:
            yield from read_recording(path)

    def scan(self) -> None:
        """Index REST snapshots (first one per symbol) and the symbols seen; blocking."""
        last_symbol: str | None = None
        for frame in self.frames():
            if frame.is_rest:
                symbol = _symbol_of(frame, last_symbol)
                if symbol is not None and "depth" in frame.source:
                    self.depth_snapshots.setdefault(symbol, frame.payload)
                continue
            parsed = split_envelope(frame.payload)
            if parsed is not None:
                last_symbol = parsed.stream.split("@", 1)[0].upper()
                self.symbols.add(last_symbol)

    async def run(self, hub: StreamHub, wait_for_clients: int, close_when_done: bool) -> None:
        """Publish the WS frames once ``wait_for_clients`` connections were made, paced by speed."""
        await hub.wait_for_subscribers(wait_for_clients)
        log.info("replay of %s starting at speed %s", [p.name for p in self.paths], self.speed)
        started = time.monotonic()
        first_ns: int | None = None
        for frame in self.frames():
            if frame.is_rest:
                continue
            parsed = split_envelope(frame.payload)
            if parsed is None:
                continue
            first_ns = frame.receive_ns if first_ns is None else first_ns
            if self.speed > 0:
                due = (frame.receive_ns - first_ns) / 1e9 / self.speed
                delay = due - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            elif self.frames_published % 256 == 0:
                await asyncio.sleep(0)  # let the senders drain at max speed
            await hub.publish(parsed.stream, parsed.data, parsed.envelope)
            self.frames_published += 1
        log.info("replay finished: %d frames", self.frames_published)
        self.done.set()
        if close_when_done:
            await hub.close_all()
