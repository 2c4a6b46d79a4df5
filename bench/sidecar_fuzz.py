"""Fuzzed frames through the market feed over a real WebSocket: no crash, every frame accounted for.

The simulator runs without a market (``live=False``) and its stream hub sends the fuzzed frames,
byte for byte as text frames, on the feed's combined-stream connection. Kinds, in equal shares:
``valid`` trade and bookTicker frames (contiguous ids), ``random`` bytes, ``truncated`` valid
frames (a proper prefix: never valid JSON), ``mutated`` valid frames (a few bytes flipped,
inserted or deleted: may or may not still parse) and ``wrong_type`` valid frames with one field
the wire structs declare replaced by a list or an object. The feed's REST points at a closed
port, so a gap a mutated trade id opens is skipped at once instead of fetched.

Checks: the feed keeps reading to the last frame (``crashes`` counts a consumer that died);
every frame sent is received, and parsed unless dead-lettered; the dead-letter file holds
exactly, in order, the frames ``parse_stream_frame`` rejects when run on the bytes received;
every random, truncated and wrong-type frame is among them and no untouched valid frame is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streaming.ingest import FeedStats

KINDS = ("valid", "random", "truncated", "mutated", "wrong_type")
_TRADE_FIELDS = ("e", "E", "s", "t", "p", "q", "T", "m")
_BOOK_FIELDS = ("u", "s", "b", "B", "a", "A")
_NOT_A_SCALAR: tuple[object, ...] = ([], {}, [1, "x"], {"a": 1})


@dataclass(frozen=True)
class FuzzResult:
    sent: int
    received: int
    parsed: int
    dead_lettered: int
    expected_bad: int
    letters_match: bool  # dead letters == the rejected frames, in order, byte for byte
    bad_kinds_all_rejected: bool  # every random / truncated / wrong_type frame dead-lettered
    valid_all_parsed: bool
    crashes: int
    by_kind: dict[str, int]


def valid_frame(index: int) -> bytes:
    """The ``index``-th frame of a clean BTCUSDT tape: trades and book tickers alternating."""
    event_ms = 1_709_316_000_000 + index
    if index % 2 == 0:
        data = {"e": "trade", "E": event_ms + 1, "s": "BTCUSDT", "t": 1_000 + index // 2,
                "p": f"{62000 + index % 97}.01000000", "q": "0.01200000", "T": event_ms,
                "m": index % 4 == 0, "M": True}  # fmt: skip
        stream = "btcusdt@trade"
    else:
        data = {"u": 5_000 + index, "s": "BTCUSDT", "b": "61999.99000000", "B": "1.50000000",
                "a": "62000.01000000", "A": "0.75000000"}  # fmt: skip
        stream = "btcusdt@bookTicker"
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def fuzz_frames(count: int, seed: int = 11) -> list[tuple[str, bytes]]:
    """``count`` (kind, frame) pairs; no frame is empty (an empty text frame is not sent)."""
    rng = random.Random(seed)
    frames: list[tuple[str, bytes]] = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        base = valid_frame(index)
        if kind == "valid":
            frame = base
        elif kind == "random":
            frame = rng.randbytes(rng.randint(1, 300))
        elif kind == "truncated":
            frame = base[: rng.randint(1, len(base) - 1)]
        elif kind == "mutated":
            frame = _mutate(rng, base)
        else:
            frame = _wrong_type(rng, base)
        frames.append((kind, frame or b"{"))
    return frames


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        action = rng.randrange(3)
        if action == 0:
            data[at] = rng.randrange(256)
        elif action == 1:
            data.insert(at, rng.randrange(256))
        elif len(data) > 1:
            del data[at]
    return bytes(data)


def _wrong_type(rng: random.Random, frame: bytes) -> bytes:
    message = json.loads(frame)
    data = message["data"]
    target = rng.choice(["stream", "data", *(_TRADE_FIELDS if "e" in data else _BOOK_FIELDS)])
    value = rng.choice(_NOT_A_SCALAR)
    if target in ("stream", "data"):
        message[target] = value
    else:
        data[target] = value
    return json.dumps(message, separators=(",", ":")).encode()


def as_received(frame: bytes) -> bytes:
    """The bytes the client receives: the simulator sends text frames, decoding with replace."""
    return frame.decode("utf-8", errors="replace").encode("utf-8")


def rejects(frame: bytes) -> bool:
    """True when the parser rejects the frame (any other exception propagates: a crash)."""
    from streaming.venues.binance import parse_stream_frame
    from streaming.venues.binance.errors import BinanceParseError

    try:
        parse_stream_frame(frame, 0)
    except BinanceParseError:
        return True
    return False


async def run_fuzz(work: Path, count: int, seed: int = 11, timeout_s: float = 300.0) -> FuzzResult:
    """Send ``count`` fuzzed frames to a :class:`MarketFeed` and account for every one."""
    from streaming.ingest import read_dead_letters

    work.mkdir(parents=True, exist_ok=True)
    dead_letters = work / "dead_letters.jsonl"
    frames = fuzz_frames(count, seed)
    received = [as_received(frame) for _, frame in frames]
    rejected = [rejects(frame) for frame in received]
    bad = [frame for frame, rejected_ in zip(received, rejected, strict=True) if rejected_]
    # Every broken trade frame opens a gap the feed skips and logs; thousands of lines say nothing.
    feed_log = logging.getLogger("streaming.ingest.feed")
    level = feed_log.level
    feed_log.setLevel(logging.CRITICAL)
    try:
        stats, crashes = await _send_all(frames, dead_letters, timeout_s)
    finally:
        feed_log.setLevel(level)
    letters = [letter.raw for letter in read_dead_letters(dead_letters)]
    kinds = [kind for kind, _ in frames]
    return FuzzResult(
        sent=count,
        received=stats.frames_received,
        parsed=stats.frames_parsed,
        dead_lettered=stats.frames_dead_lettered,
        expected_bad=len(bad),
        letters_match=letters == bad,
        bad_kinds_all_rejected=all(
            r
            for k, r in zip(kinds, rejected, strict=True)
            if k in ("random", "truncated", "wrong_type")
        ),
        valid_all_parsed=not any(r for k, r in zip(kinds, rejected, strict=True) if k == "valid"),
        crashes=crashes,
        by_kind=dict(Counter(k for k, r in zip(kinds, rejected, strict=True) if r)),
    )


async def _send_all(
    frames: list[tuple[str, bytes]], dead_letters: Path, timeout_s: float
) -> tuple[FeedStats, int]:
    """Publish every frame to a feed's connection; its stats once all arrived, and crashes."""
    from streaming.ingest import Backoff, MarketFeed
    from streaming.simulator.server import SimulatorServer
    from streaming.venues.binance.client import RetryPolicy
    from tests.services import free_port

    crashes = 0
    async with SimulatorServer(symbols=["BTCUSDT"], live=False, heartbeat_seconds=None) as sim:
        feed = MarketFeed(
            sim.ws_url, f"http://127.0.0.1:{free_port()}", ["BTCUSDT"],
            dead_letter_path=dead_letters, backoff=Backoff(initial_s=0.01, max_s=0.1),
            rest_retry=RetryPolicy(max_attempts=1, base_delay=0.01, max_delay=0.01),
            reorder_wait_s=0.0, max_gap_fill=0,
        )  # fmt: skip
        async with feed:
            consumer = asyncio.create_task(_drain(feed))
            await asyncio.wait_for(sim.hub.wait_for_subscribers(1), 30)
            for _, frame in frames:
                await sim.hub.publish("btcusdt@trade", b"", combined=frame)
            deadline = time.monotonic() + timeout_s
            while feed.stats.frames_received < len(frames) and not consumer.done():
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            if consumer.done() and consumer.exception() is not None:
                crashes += 1
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    return feed.stats, crashes


async def _drain(feed: object) -> None:
    async for _ in feed:  # type: ignore[attr-defined]
        pass
