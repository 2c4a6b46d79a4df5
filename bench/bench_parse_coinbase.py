"""Parse rate of the recorded Coinbase Advanced Trade session: ours against cryptofeed's handler.

The workload is the whole recording (``../shared/data/coinbase``, one connection: level2,
market_trades, ticker, candles and heartbeats of BTC-USD and ETH-USD), loaded into memory
first. A pass gives every frame, in order, to a fresh parser (sequence numbers are per
connection, so one parser cannot see a frame twice); a round is a few passes, and the best of
five rounds is reported. Only the handling of frames is timed.

The two do different work, so the table says what each did:

* ours, :class:`~streaming.venues.coinbase.parse.CoinbaseFrameParser`: checks every frame's
  sequence number, every decimal and time, and builds a record for every trade (the
  subscription's snapshot of recent trades too), ticker, book snapshot and book update;
* cryptofeed's ``Coinbase.message_handler`` (driven as its feed does, text frames and float
  receive times, with the symbol table seeded so it needs no network, no callbacks): JSON with
  Decimal floats, every book level to Decimal into its own order book, a Trade object per
  trade of an update; it has no ticker handler (it logs a warning for ticker, heartbeats and
  candles frames; the log is silenced while timing, or the warnings would dominate) and skips
  the trade snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.recordings import RecordedFrame, read_recording
from streaming.venues.coinbase.parse import CoinbaseFrameParser, parse_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coinbase"
RECORDING = "cryptofeed_coinbase_20260809.jsonl.gz"
ROUNDS = 5
MIN_ROUND_MESSAGES = 5_000  # a round repeats the recording until it holds this many frames
PRODUCTS = ("BTC-USD", "ETH-USD")


def load_frames() -> list[RecordedFrame]:
    """The recording's WebSocket frames, in order."""
    return [frame for frame in read_recording(DATA / RECORDING) if not frame.is_rest]


def passes(frames: list[RecordedFrame]) -> int:
    return max(1, -(-MIN_ROUND_MESSAGES // len(frames)))


def best_rate(prepare: Callable[[], Callable[[], None]], messages: int) -> float:
    """Messages per second of the fastest round; ``prepare`` builds a round outside the timing."""
    best = float("inf")
    for _ in range(ROUNDS):
        run_once = prepare()
        start = time.perf_counter()
        run_once()
        best = min(best, time.perf_counter() - start)
    return messages / best


def ours_rate(frames: list[RecordedFrame]) -> float:
    """Rate of one CoinbaseFrameParser per pass over the recording."""
    inputs = [(frame.payload, frame.receive_ns) for frame in frames]
    count = passes(frames)

    def prepare() -> Callable[[], None]:
        def run_once() -> None:
            for _ in range(count):
                parse = CoinbaseFrameParser().parse
                for payload, receive_ns in inputs:
                    parse(payload, receive_ns)

        return run_once

    return best_rate(prepare, len(inputs) * count)


def cryptofeed_feed() -> Any:
    """cryptofeed's Coinbase feed with its symbol table seeded, so it needs no network."""
    from cryptofeed.defines import COINBASE, L2_BOOK, SPOT, TRADES
    from cryptofeed.exchanges import Coinbase
    from cryptofeed.symbols import Symbol, Symbols

    normalized: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {"tick_size": {}, "instrument_type": {}}
    for product in PRODUCTS:
        base, quote = product.split("-")
        symbol = Symbol(base, quote, type=SPOT)
        normalized[symbol.normalized] = product
        info["tick_size"][symbol.normalized] = "0.01"
        info["instrument_type"][symbol.normalized] = SPOT
    Symbols.set(COINBASE, normalized, info)
    return Coinbase(symbols=list(PRODUCTS), channels=[TRADES, L2_BOOK])


def cryptofeed_outputs(frames: list[RecordedFrame]) -> dict[str, int]:
    """What cryptofeed's handler emits for the frames, by type (checks it reads them all)."""
    from cryptofeed.defines import L2_BOOK, TRADES

    emitted: dict[str, int] = {}

    async def collect(obj: Any, receipt_timestamp: float) -> None:
        emitted[type(obj).__name__] = emitted.get(type(obj).__name__, 0) + 1

    feed = cryptofeed_feed()
    feed.callbacks[TRADES] = [collect]
    feed.callbacks[L2_BOOK] = [collect]

    async def run() -> None:
        for frame in frames:
            await feed.message_handler(frame.payload.decode(), None, frame.receive_ns / 1e9)

    asyncio.run(run())
    return emitted


def cryptofeed_rate(frames: list[RecordedFrame]) -> float:
    """Rate of cryptofeed's Coinbase handler, a fresh feed per pass, without callbacks."""
    # cryptofeed receives text frames and float seconds; convert outside the timed loop.
    inputs = [(frame.payload.decode(), frame.receive_ns / 1e9) for frame in frames]
    count = passes(frames)

    def prepare() -> Callable[[], None]:
        handlers = [cryptofeed_feed().message_handler for _ in range(count)]

        async def run() -> None:
            for handler in handlers:
                for text, receipt in inputs:
                    await handler(text, None, receipt)

        return lambda: asyncio.run(run())

    return best_rate(prepare, len(inputs) * count)


def main() -> None:
    """Print the parse-rate table."""
    if not (DATA / RECORDING).is_file():
        print(f"skipped: the recording {DATA / RECORDING} is absent")
        return
    frames = load_frames()
    ours = parse_frames([(frame.payload, frame.receive_ns) for frame in frames])
    kinds: dict[str, int] = {}
    for record in ours:
        kinds[type(record).__name__] = kinds.get(type(record).__name__, 0) + 1
    feed_log = logging.getLogger("feedhandler")
    level = feed_log.level
    feed_log.setLevel(logging.ERROR)  # cryptofeed warns at every frame it has no handler for
    try:
        theirs = cryptofeed_outputs(frames)
        ours_per_s, theirs_per_s = ours_rate(frames), cryptofeed_rate(frames)
    finally:
        feed_log.setLevel(level)
    print("| venue | frames | ours msg/s | cryptofeed msg/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| COINBASE | {len(frames):,} | {ours_per_s:,.0f} | {theirs_per_s:,.0f} "
        f"| {ours_per_s / theirs_per_s:.2f}x |"
    )
    print(f"\nours emitted {sorted(kinds.items())}; cryptofeed emitted {sorted(theirs.items())}")


if __name__ == "__main__":
    main()
