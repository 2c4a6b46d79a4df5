"""Parse-and-normalize rate of Binance USD-M futures frames: ours against cryptofeed's
BinanceFutures message handler, in the same run.

There is no futures capture in ../shared/data, so the frames are synthetic: generated here,
deterministically (a seeded random walk), in the shapes Binance documents for USD-M futures
combined streams (``@trade`` with its execution type ``X``, ``@bookTicker`` with ``E``/``T``,
``@markPrice@1s``, ``@depth@0ms`` diffs chained by ``pu``). All frames are built before timing;
a round is one pass over a channel's frames (best of ``ROUNDS``), each with a fresh parser, and
for cryptofeed a fresh feed whose book is seeded where the diffs start, so no round touches the
network. cryptofeed reads futures ``@trade`` frames as unexpected messages (it takes trades from
``@aggTrade``), so that row and the mixed one have no cryptofeed figure.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any

from streaming.venues.binance_futures.parse import BinanceFuturesFrameParser
from streaming.venues.binance_futures.venue import VENUE

SEED = 20240808
FRAMES_PER_CHANNEL = 50_000
ROUNDS = 5
SYMBOL = "BTCUSDT"
START_MS = 1_723_161_255_000
Frames = list[tuple[bytes, int]]


def _price(ticks: int) -> str:
    """Cents as Binance's decimal text: 6183763 → ``61837.63``."""
    return f"{ticks // 100}.{ticks % 100:02d}"


def _quantity(lots: int) -> str:
    """Thousandths as decimal text: 14 → ``0.014``."""
    return f"{lots // 1000}.{lots % 1000:03d}"


def _levels(rng: random.Random, best: int, step: int) -> list[list[str]]:
    """Up to six levels from ``best`` outwards by ``step`` cents; a fifth of them removed."""
    levels = sorted(rng.sample(range(60), rng.randint(0, 6)))
    return [
        [
            _price(best + step * i),
            "0.000" if rng.random() < 0.2 else _quantity(rng.randint(1, 20000)),
        ]
        for i in levels
    ]


def _frame(channel: str, data: dict[str, Any]) -> bytes:
    envelope = {"stream": f"{SYMBOL.lower()}@{channel}", "data": data}
    return json.dumps(envelope, separators=(",", ":")).encode()


def generate(channel: str, count: int, seed: int = SEED) -> Frames:
    """``count`` frames of one channel, with their receive times, the same for the same seed."""
    rng = random.Random(f"{seed}:{channel}")
    mid, trade_id, update_id = 6_000_000, 5_000_000_000, 7_000_000_000
    frames: Frames = []
    for n in range(count):
        mid += rng.choice((-10, 0, 10))
        now = START_MS + n * 7
        if channel == "trade":
            trade_id += 1
            data = {"e": "trade", "E": now, "T": now - 1, "s": SYMBOL, "t": trade_id,
                    "p": _price(mid + rng.choice((-10, 0))), "q": _quantity(rng.randint(1, 5000)),
                    "X": "MARKET", "m": rng.random() < 0.5}  # fmt: skip
        elif channel == "bookTicker":
            update_id += rng.randint(1, 40)
            data = {"e": "bookTicker", "u": update_id, "E": now, "T": now - 1, "s": SYMBOL,
                    "b": _price(mid - 10), "B": _quantity(rng.randint(1, 90000)),
                    "a": _price(mid), "A": _quantity(rng.randint(1, 90000))}  # fmt: skip
        elif channel == "markPrice@1s":
            rate = rng.randint(-3000, 12000)
            data = {"e": "markPriceUpdate", "E": now, "s": SYMBOL, "p": f"{_price(mid)}000000",
                    "i": f"{_price(mid - 20)}000000", "P": f"{_price(mid + 30)}000000",
                    "r": f"{'-' if rate < 0 else ''}0.{abs(rate):08d}",
                    "T": START_MS + 8 * 3_600_000}  # fmt: skip
        else:  # depth@0ms: a few levels changed near the mid, the diff chained by pu
            previous, first = update_id, update_id + rng.randint(1, 50)
            update_id = first + rng.randint(0, 20)
            data = {"e": "depthUpdate", "E": now, "T": now - 1, "s": SYMBOL, "U": first,
                    "u": update_id, "pu": previous, "b": _levels(rng, mid, -10),
                    "a": _levels(rng, mid + 10, 10)}  # fmt: skip
        frames.append((_frame(channel, data), START_MS * 1_000_000 + n * 7_000_123))
    return frames


def best_rate(setup: Callable[[], Callable[[], None]], messages: int) -> float:
    """Messages per second of the fastest of ROUNDS rounds; ``setup()`` (not timed) gives a
    round to run."""
    best = float("inf")
    for _ in range(ROUNDS):
        run_once = setup()
        start = time.perf_counter()
        run_once()
        best = min(best, time.perf_counter() - start)
    return messages / best


def ours_rate(frames: Frames) -> float:
    """Rate of one BinanceFuturesFrameParser per round over the frames."""

    def setup() -> Callable[[], None]:
        parse = BinanceFuturesFrameParser().parse

        def run_once() -> None:
            for raw, receive_ns in frames:
                parse(raw, receive_ns)

        return run_once

    return best_rate(setup, len(frames))


def ours_outputs(frames: Frames) -> int:
    """How many records our parser gives for the frames (checks it reads them all)."""
    parser = BinanceFuturesFrameParser()
    return sum(parser.parse(raw, receive_ns) is not None for raw, receive_ns in frames)


def cryptofeed_feed(first_depth: bytes | None = None) -> Any:
    """cryptofeed's BinanceFutures feed, symbol table seeded and, given the first depth frame,
    its book seeded where that diff chains on, so that it needs no network."""
    from cryptofeed.defines import BINANCE_FUTURES, FUNDING, L2_BOOK, PERPETUAL, TICKER
    from cryptofeed.exchanges import BinanceFutures
    from cryptofeed.symbols import Symbol, Symbols
    from cryptofeed.types import OrderBook

    symbol = Symbol("BTC", "USDT", type=PERPETUAL)
    info = {"tick_size": {symbol.normalized: "0.10"},
            "instrument_type": {symbol.normalized: PERPETUAL}}  # fmt: skip
    Symbols.set(BINANCE_FUTURES, {symbol.normalized: SYMBOL}, info)
    feed: Any = BinanceFutures(symbols=[symbol.normalized], channels=[TICKER, FUNDING, L2_BOOK])
    if first_depth is not None:
        from decimal import Decimal

        bids = {Decimal(6_000_000 - 10 * i) / 100: Decimal(1) for i in range(1, 200)}
        asks = {Decimal(6_000_000 + 10 * i) / 100: Decimal(1) for i in range(1, 200)}
        feed._l2_book[symbol.normalized] = OrderBook(
            feed.id, symbol.normalized, max_depth=feed.max_depth, bids=bids, asks=asks
        )
        feed.last_update_id[symbol.normalized] = json.loads(first_depth)["data"]["pu"]
    return feed


def cryptofeed_outputs(frames: Frames) -> int:
    """How many objects cryptofeed's handler emits for the frames (checks it reads them all)."""
    from cryptofeed.defines import FUNDING, L2_BOOK, TICKER

    emitted: list[Any] = []

    async def collect(obj: Any, receipt_timestamp: float) -> None:
        emitted.append(obj)

    feed = cryptofeed_feed(frames[0][0] if b"depthUpdate" in frames[0][0] else None)
    for kind in (TICKER, FUNDING, L2_BOOK):
        feed.callbacks[kind] = [collect]

    async def run() -> None:
        for raw, receive_ns in frames:
            await feed.message_handler(raw.decode(), None, receive_ns / 1e9)

    asyncio.run(run())
    return len(emitted)


def cryptofeed_rate(frames: Frames) -> float:
    """Rate of cryptofeed's BinanceFutures message handler over the frames, no callbacks."""
    # cryptofeed receives text frames and float seconds; convert outside the timed loop.
    inputs = [(raw.decode(), receive_ns / 1e9) for raw, receive_ns in frames]
    first_depth = frames[0][0] if b"depthUpdate" in frames[0][0] else None

    def setup() -> Callable[[], None]:
        handler = cryptofeed_feed(first_depth).message_handler

        async def run() -> None:
            for text, receipt in inputs:
                await handler(text, None, receipt)

        return lambda: asyncio.run(run())

    return best_rate(setup, len(inputs))


def interleaved(*streams: Frames) -> Frames:
    """The streams' frames taken in turn, each stream's in its own order."""
    merged: Frames = []
    for group in zip(*streams, strict=True):
        merged.extend(group)
    return merged


def main() -> None:
    """Print the parse-rate table."""
    channels = ("trade", "bookTicker", "markPrice@1s", "depth@0ms")
    frames = {channel: generate(channel, FRAMES_PER_CHANNEL) for channel in channels}
    mixed = interleaved(*frames.values())
    for channel, channel_frames in frames.items():
        if ours_outputs(channel_frames) != len(channel_frames):
            raise RuntimeError(f"our parser skipped {channel} frames")
        if channel != "trade" and cryptofeed_outputs(channel_frames) != len(channel_frames):
            raise RuntimeError(f"cryptofeed skipped {channel} frames")

    rows: list[tuple[str, int, float, float | None]] = [
        (f"all four, {SYMBOL}", len(mixed), ours_rate(mixed), None)
    ]
    for channel, channel_frames in frames.items():
        theirs = None if channel == "trade" else cryptofeed_rate(channel_frames)
        rows.append((f"@{channel}", len(channel_frames), ours_rate(channel_frames), theirs))

    print("synthetic frames of the documented shapes (no futures capture exists here)\n")
    print("| venue | workload | frames | ours msg/s | cryptofeed msg/s | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for label, count, ours, theirs in rows:
        theirs_text = f"{theirs:,.0f}" if theirs else "n/a"
        ratio_text = f"{ours / theirs:.2f}x" if theirs else ""
        cells = (VENUE.name, label, f"{count:,}", f"{ours:,.0f}", theirs_text, ratio_text)
        print(f"| {' | '.join(cells)} |")
