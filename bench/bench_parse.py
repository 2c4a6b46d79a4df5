"""Parse-and-normalize rate of recorded Binance frames: ours against cryptofeed's Binance handler.

Workloads (all frames are loaded into memory first; only parsing is timed, best of a few rounds):

* BTCUSDT 2024 session, both day files, every stream frame through ``parse_stream_frame``
  (cryptofeed has no handler for the ``@trade`` stream, so it has no number here);
* its bookTicker frames, and the aggTrade frames of the cryptofeed 2021 recording, through both
  ``parse_stream_frame`` and cryptofeed's ``Binance.message_handler`` (JSON decode, Decimal
  conversion, symbol normalisation and its Ticker/Trade objects, no callbacks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.recordings import RecordedFrame, read_recording
from streaming.venues.binance.parse import parse_stream_frame

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance" / "ws"
BTCUSDT_FILES = ("btcusdt_20240808.txt.gz", "btcusdt_20240809.txt.gz")
CRYPTOFEED_FILE = "cryptofeed_binance_20210404.txt.gz"
ROUNDS = 5
MIN_ROUND_MESSAGES = 50_000  # small workloads are repeated so a round lasts long enough to time


def load_stream_frames(*names: str) -> list[RecordedFrame]:
    """Every WebSocket frame of the given recordings, in order."""
    return [f for name in names for f in read_recording(DATA / name) if not f.is_rest]


def with_stream_kind(frames: list[RecordedFrame], kind: bytes) -> list[RecordedFrame]:
    """Frames of one stream type (``@bookTicker``, ``@aggTrade``, ...)."""
    return [f for f in frames if b"@" + kind + b'"' in f.payload[:60]]


def best_rate(run_once: Callable[[], None], messages: int) -> float:
    """Messages per second of the fastest round."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run_once()
        best = min(best, time.perf_counter() - start)
    return messages / best


def repeated(frames: list[RecordedFrame]) -> list[RecordedFrame]:
    """The frames, repeated until a round holds at least MIN_ROUND_MESSAGES."""
    return frames * max(1, -(-MIN_ROUND_MESSAGES // len(frames)))


def ours_rate(frames: list[RecordedFrame]) -> float:
    """Rate of parse_stream_frame over the frames."""
    inputs = [(f.payload, f.receive_ns) for f in repeated(frames)]

    def run_once() -> None:
        for payload, receive_ns in inputs:
            parse_stream_frame(payload, receive_ns)

    return best_rate(run_once, len(inputs))


def cryptofeed_feed(channels: list[str] | None = None) -> Any:
    """cryptofeed's Binance feed (trades and tickers unless ``channels`` says otherwise) with its
    symbol table seeded, so it needs no network."""
    from cryptofeed.defines import BINANCE, SPOT, TICKER, TRADES
    from cryptofeed.exchanges import Binance
    from cryptofeed.symbols import Symbol, Symbols

    normalized: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {"tick_size": {}, "instrument_type": {}}
    for base in ("BTC", "ETH", "DOT"):
        symbol = Symbol(base, "USDT", type=SPOT)
        normalized[symbol.normalized] = f"{base}USDT"
        info["tick_size"][symbol.normalized] = "0.01"
        info["instrument_type"][symbol.normalized] = SPOT
    Symbols.set(BINANCE, normalized, info)
    return Binance(
        symbols=["BTC-USDT", "ETH-USDT", "DOT-USDT"], channels=channels or [TRADES, TICKER]
    )


def cryptofeed_outputs(frames: list[RecordedFrame]) -> int:
    """How many objects cryptofeed's handler emits for the frames (checks it parses them all)."""
    from cryptofeed.defines import TICKER, TRADES

    emitted: list[Any] = []

    async def collect(obj: Any, receipt_timestamp: float) -> None:
        emitted.append(obj)

    feed = cryptofeed_feed()
    feed.callbacks[TRADES] = [collect]
    feed.callbacks[TICKER] = [collect]

    async def run() -> None:
        for f in frames:
            await feed.message_handler(f.payload.decode(), None, f.receive_ns / 1e9)

    asyncio.run(run())
    return len(emitted)


def cryptofeed_round(frames: list[RecordedFrame]) -> tuple[Callable[[], None], int]:
    """One round of cryptofeed's Binance message handler over the frames, without callbacks,
    to be timed by the caller, and the number of messages it handles."""
    feed = cryptofeed_feed()
    # cryptofeed receives text frames and float seconds; convert outside the timed loop.
    inputs = [(f.payload.decode(), f.receive_ns / 1e9) for f in repeated(frames)]
    handler = feed.message_handler

    async def run() -> None:
        for text, receipt in inputs:
            await handler(text, None, receipt)

    return lambda: asyncio.run(run()), len(inputs)


def cryptofeed_rate(frames: list[RecordedFrame]) -> float:
    """Rate of cryptofeed's Binance message handler over the frames, without callbacks."""
    return best_rate(*cryptofeed_round(frames))


def main() -> None:
    """Print the parse-rate table."""
    if not DATA.is_dir():
        print(f"skipped: recordings not found at {DATA}")
        return
    btcusdt = load_stream_frames(*BTCUSDT_FILES)
    book_tickers = with_stream_kind(btcusdt, b"bookTicker")
    agg_trades = with_stream_kind(load_stream_frames(CRYPTOFEED_FILE), b"aggTrade")
    for frames in (book_tickers, agg_trades):
        emitted = cryptofeed_outputs(frames)
        if emitted != len(frames):
            raise RuntimeError(f"cryptofeed emitted {emitted} objects for {len(frames)} frames")

    rows: list[tuple[str, int, float, float | None]] = [
        ("BTCUSDT 2024, all streams", len(btcusdt), ours_rate(btcusdt), None)
    ]
    for label, frames in (
        ("BTCUSDT 2024 bookTicker", book_tickers),
        ("2021 aggTrade (BTC/ETH/DOT)", agg_trades),
    ):
        rows.append((label, len(frames), ours_rate(frames), cryptofeed_rate(frames)))

    print(
        f"{'workload':<30} {'messages':>9} {'ours msg/s':>12} {'cryptofeed msg/s':>17} {'ratio':>7}"
    )
    for label, count, ours, theirs in rows:
        theirs_text = f"{theirs:>17,.0f}" if theirs else f"{'n/a':>17}"
        ratio_text = f"{ours / theirs:>6.2f}x" if theirs else f"{'':>7}"
        print(f"{label:<30} {count:>9,} {ours:>12,.0f} {theirs_text} {ratio_text}")
