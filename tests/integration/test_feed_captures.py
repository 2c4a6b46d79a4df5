"""The market feed against other venues' real captures, served again by the simulator's capture
replay (:mod:`streaming.simulator.capture`): what reaches the sidecar is what the venue's parser
makes of the frames, a lost frame makes the feed subscribe again, and a broken one is kept aside.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from streaming.ingest import MarketFeed, read_dead_letters
from streaming.recordings import RecordedFrame
from streaming.records import BookTicker, DepthSnapshot, MarketRecord, Trade
from streaming.simulator.capture import CaptureFaults, CaptureReplayServer
from streaming.venues import venue
from streaming.venues.base import Venue
from streaming.venues.kraken.venue import KRAKEN_V1
from tests.conftest import SHARED_DATA

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(60)]

COINBASE = SHARED_DATA / "coinbase" / "cryptofeed_coinbase_20260809.jsonl.gz"


@pytest.fixture(autouse=True)
def _needs_shared_data() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: the venue captures live there")


def parsed(found: Venue, symbols: list[str], frames: list[RecordedFrame]) -> list[MarketRecord]:
    """What a fresh parser of ``found`` makes of ``frames``, in order."""
    parser, records = found.parser(symbols), []
    for frame in frames:
        out = parser.parse(frame.payload, frame.receive_ns)
        records += out if isinstance(out, list) else [] if out is None else [out]
    return records


async def take(feed: MarketFeed, count: int) -> list[MarketRecord]:
    taken: list[MarketRecord] = []
    async with asyncio.timeout(30):
        async for record in feed:
            taken.append(record)
            if len(taken) == count:
                return taken
    return taken


def key(record: MarketRecord, local: tuple[str, ...] = ("receive_ns",)) -> tuple[object, ...]:
    """A record without the fields the receiving side stamps (its receive time, and what a
    venue derives from it)."""
    fields = type(record).__struct_fields__
    return (type(record).__name__, *(getattr(record, f) for f in fields if f not in local))


def feed_of(server: CaptureReplayServer, tmp_path: Path) -> MarketFeed:
    return MarketFeed(
        server.url, "http://127.0.0.1:9", ["BTC-USD", "ETH-USD"], venue=venue("coinbase"),
        dead_letter_path=tmp_path / "dead_letters.jsonl", watchdog_s=5.0,
    )  # fmt: skip


async def test_coinbase_capture_reaches_the_sidecar_as_its_parser_reads_it(tmp_path: Path) -> None:
    # Arrange
    async with CaptureReplayServer(COINBASE) as server:
        expected = parsed(venue("coinbase"), ["BTC-USD", "ETH-USD"], server.frames)

        # Act
        async with feed_of(server, tmp_path) as feed:
            got = await take(feed, len(expected))

    # Assert
    assert [key(r) for r in got] == [key(r) for r in expected]
    assert server.subscriptions[0] == venue("coinbase").subscriptions(
        ["BTC-USD", "ETH-USD"], venue("coinbase").default_channels
    )
    kinds = Counter(type(r).__name__ for r in got)
    assert kinds["Trade"] > 0 and kinds["BookTicker"] > 0 and kinds["DepthUpdate"] > 0
    assert {r.venue for r in got} == {"COINBASE"}
    assert feed.stats.connections_opened == 1 and not feed.stats.reconnects


async def test_a_lost_coinbase_frame_makes_the_feed_subscribe_again_and_go_on(
    tmp_path: Path,
) -> None:
    # Arrange: the first connection loses a ticker frame halfway
    server = CaptureReplayServer(COINBASE)
    tickers = [i for i, f in enumerate(server.frames) if b'"channel":"ticker"' in f.payload]
    lost = tickers[len(tickers) // 2]
    server.faults = CaptureFaults(drop=frozenset({lost}))
    whole = parsed(venue("coinbase"), ["BTC-USD", "ETH-USD"], server.frames)

    # Act: read until the second connection has delivered all of its tickers
    async with server, feed_of(server, tmp_path) as feed:
        got: list[MarketRecord] = []
        async with asyncio.timeout(30):
            async for record in feed:
                got.append(record)
                if (
                    feed.stats.connections_opened == 2
                    and sum(isinstance(r, BookTicker) for r in got)
                    >= sum(isinstance(r, BookTicker) for r in whole) + 1
                ):
                    break

    # Assert
    assert feed.stats.reconnects["sequence_gap"] == 1
    assert len(server.subscriptions) == 2 and server.subscriptions[1] == server.subscriptions[0]
    trades = [r.trade_id for r in got if isinstance(r, Trade)]
    for symbol in ("BTC-USD", "ETH-USD"):  # each trade once, in order, across the reconnect
        ids = [r.trade_id for r in got if isinstance(r, Trade) and r.symbol == symbol]
        assert ids == sorted(set(ids)) and len(ids) > 0
    assert trades  # the reconnect did not starve the tape
    assert list(read_dead_letters(tmp_path / "dead_letters.jsonl")) == []


async def test_a_cut_coinbase_frame_is_dead_lettered_byte_for_byte(tmp_path: Path) -> None:
    # Arrange
    server = CaptureReplayServer(COINBASE)
    heartbeat = next(i for i, f in enumerate(server.frames) if b'"heartbeats"' in f.payload[:40])
    server.faults = CaptureFaults(cut=frozenset({heartbeat}))
    cut = server.frames[heartbeat].payload[: len(server.frames[heartbeat].payload) // 2]

    # Act
    async with server, feed_of(server, tmp_path) as feed:
        async with asyncio.timeout(30):
            async for _ in feed:
                if feed.stats.frames_dead_lettered:
                    break

    # Assert
    (letter,) = read_dead_letters(tmp_path / "dead_letters.jsonl")
    assert letter.raw == cut and letter.kind == "malformed json"


KRAKEN_2021 = SHARED_DATA / "kraken" / "cryptofeed_kraken_20210417.jsonl.gz"
KRAKEN_PAIRS = ["BTC/CHF", "ETH/CHF", "XMR/USD"]


def kraken_feed(server: CaptureReplayServer, tmp_path: Path) -> MarketFeed:
    return MarketFeed(
        server.url, "http://127.0.0.1:9", KRAKEN_PAIRS, venue=KRAKEN_V1,
        channels=("trade", "ticker", "book"), dead_letter_path=tmp_path / "dead_letters.jsonl",
        watchdog_s=5.0,
    )  # fmt: skip


async def test_kraken_capture_reaches_the_sidecar_with_every_book_checksum_verified(
    tmp_path: Path,
) -> None:
    # Arrange
    async with CaptureReplayServer(KRAKEN_2021) as server:
        expected = parsed(KRAKEN_V1, KRAKEN_PAIRS, server.frames)

        # Act
        async with kraken_feed(server, tmp_path) as feed:
            got = await take(feed, len(expected))

    # Assert: v1 tickers carry no time of their own, so their order ids are receive times
    local = ("receive_ns", "update_id")
    assert [key(r, local) for r in got] == [key(r, local) for r in expected]
    assert Counter(type(r).__name__ for r in got)["DepthUpdate"] > 4000
    assert {r.venue for r in got} == {"KRAKEN"}
    assert feed.stats.connections_opened == 1 and not feed.stats.reconnects


async def test_a_lost_kraken_book_update_fails_its_checksum_and_the_feed_subscribes_again(
    tmp_path: Path,
) -> None:
    # Arrange: the first connection loses one book update of the busiest pair
    server = CaptureReplayServer(KRAKEN_2021)
    updates = [i for i, f in enumerate(server.frames) if b'"book-1000"' in f.payload]
    server.faults = CaptureFaults(drop=frozenset({updates[len(updates) // 2]}))

    # Act: read until the second connection has rebuilt the books
    async with server, kraken_feed(server, tmp_path) as feed:
        async with asyncio.timeout(30):
            async for record in feed:
                if feed.stats.connections_opened == 2 and isinstance(record, DepthSnapshot):
                    break

    # Assert
    assert dict(feed.stats.reconnects) == {"checksum_mismatch": 1}
    assert server.subscriptions[1] == server.subscriptions[0]
