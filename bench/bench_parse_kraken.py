"""Parse rate of the recorded Kraken spot session: ours against cryptofeed's Kraken handler.

The 2021 capture is WebSocket v1 (book-1000 snapshots and updates, tickers, trades, heartbeats
and status events of 10 pairs), so ours is :class:`KrakenV1FrameParser`: JSON decode, decimal
checks, exact times, the book of each pair kept and its CRC32 checksum compared after every
update. cryptofeed's is ``Kraken.message_handler`` (its v1 handler: JSON decode with Decimal,
symbol normalisation, its C order book and Trade/Ticker objects, no callbacks), with its symbol
table seeded from the capture's own AssetPairs answer, so nothing touches the network. It runs
twice: with ``checksum_validation`` (the same work as ours) and without (its default).

All frames are loaded first; only parsing is timed, the best of 5 rounds, each round a fresh
parser (books start from their snapshots). A third row times the venue's live parser, v2, over
the same data re-expressed as v2 frames (the tests' converter). Timings are reported, never
asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.recordings import RecordedFrame, read_recording
from streaming.venues.kraken.parse import KrakenFrameParser
from streaming.venues.kraken.parse_v1 import KrakenV1FrameParser

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kraken"
RECORDING = "cryptofeed_kraken_20210417.jsonl.gz"
ROUNDS = 5
REPEATS = 10  # the capture's frames parsed this many times a round (each time from a new parser)


def best_rate(run_once: Callable[[], None], messages: int) -> float:
    """Messages per second of the fastest round."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run_once()
        best = min(best, time.perf_counter() - start)
    return messages / best


def ours_rate(frames: list[RecordedFrame]) -> float:
    """Rate of KrakenV1FrameParser over the frames."""
    inputs = [(f.payload, f.receive_ns) for f in frames]

    def run_once() -> None:
        for _ in range(REPEATS):
            parse = KrakenV1FrameParser().parse
            for payload, receive_ns in inputs:
                parse(payload, receive_ns)

    return best_rate(run_once, REPEATS * len(inputs))


def cryptofeed_feed(asset_pairs: bytes, checksum_validation: bool) -> Any:
    """cryptofeed's Kraken feed for the capture's pairs, its symbol table seeded offline."""
    from cryptofeed.defines import KRAKEN, L2_BOOK, TICKER, TRADES
    from cryptofeed.exchanges import Kraken
    from cryptofeed.symbols import Symbols

    normalized, info = Kraken._parse_symbol_data(json.loads(asset_pairs))
    Symbols.set(KRAKEN, normalized, info)
    header_symbols = ["KSM-BTC", "XMR-USD", "ETH-CHF", "OMG-USD", "GRT-ETH", "WAVES-EUR",
                      "ADA-BTC", "BTC-CHF", "SC-EUR", "OCEAN-BTC"]  # fmt: skip
    return Kraken(
        symbols=header_symbols,
        channels=[L2_BOOK, TRADES, TICKER],
        max_depth=1000,
        checksum_validation=checksum_validation,
    )


def cryptofeed_rate(
    frames: list[RecordedFrame], asset_pairs: bytes, checksum_validation: bool
) -> float:
    """Rate of cryptofeed's Kraken message handler over the frames, without callbacks."""
    # cryptofeed receives text frames and float seconds; convert outside the timed loop.
    inputs = [(f.payload.decode(), f.receive_ns / 1e9) for f in frames]

    async def run() -> None:
        for _ in range(REPEATS):
            handler = cryptofeed_feed(asset_pairs, checksum_validation).message_handler
            for text, receipt in inputs:
                await handler(text, None, receipt)

    return best_rate(lambda: asyncio.run(run()), REPEATS * len(inputs))


def ours_v2_rate(frames: list[RecordedFrame]) -> tuple[int, float]:
    """Rate of KrakenFrameParser (v2, the venue's live protocol) over the same data re-expressed
    as v2 frames by the venue's tests (cryptofeed has no v2 handler to compare with)."""
    from tests.unit.test_venue_kraken import v2_frames

    inputs = list(zip(v2_frames(frames)[0], (f.receive_ns for f in frames), strict=True))

    def run_once() -> None:
        for _ in range(REPEATS):
            parse = KrakenFrameParser().parse
            for payload, receive_ns in inputs:
                parse(payload, receive_ns)

    return len(inputs), best_rate(run_once, REPEATS * len(inputs))


def main() -> None:
    """Print the parse-rate table."""
    path = DATA / RECORDING
    if not path.is_file():
        print(f"skipped: recording not found at {path}")
        return
    recorded = list(read_recording(path))
    frames = [f for f in recorded if not f.is_rest]
    asset_pairs = next(f.payload for f in recorded if f.source.endswith("/AssetPairs"))

    ours = ours_rate(frames)
    checked = cryptofeed_rate(frames, asset_pairs, checksum_validation=True)
    unchecked = cryptofeed_rate(frames, asset_pairs, checksum_validation=False)
    v2_count, v2_rate = ours_v2_rate(frames)
    rows = [
        ("KRAKEN v1 2021 (cryptofeed checksum_validation on)", len(frames), ours, checked),
        ("KRAKEN v1 2021 (cryptofeed default: no checksums)", len(frames), ours, unchecked),
        ("KRAKEN same data as v2 frames (ours: v2 parser)", v2_count, v2_rate, None),
    ]
    print("| venue | frames | ours msg/s | cryptofeed msg/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, count, rate, theirs in rows:
        theirs_text = f"{theirs:,.0f}" if theirs else "n/a"
        ratio_text = f"{rate / theirs:.2f}x" if theirs else ""
        print(f"| {label} | {count:,} | {rate:,.0f} | {theirs_text} | {ratio_text} |")


if __name__ == "__main__":
    main()
