"""Order-book rate on the recorded Binance depth frames: the sidecar's book recorder and the
lakehouse's rebuild, next to cryptofeed's Binance L2 book handler on the same frames.

Each recorded session (BTCUSDT and ETHUSDT, 2024-08-08/09, ~650 s each) holds its ``@depth@100ms``
frames and one REST ``/api/v3/depth`` snapshot, all loaded into memory first. Timed, best of
``ROUNDS`` rounds, each from an empty book:

* **recorder** (live): every frame parsed (``parse_stream_frame``, ``parse_rest_depth``) and fed
  to a :class:`~streaming.book.BookRecorder` (Binance's sync procedure, the diff applied to the
  book, the landed lines built, a full snapshot every 60 s);
* **rebuild** (batch): the landed lines of that run, decoded from their JSON, rebuilt in integer
  units and held to every snapshot (:func:`trading_assets.lib.book.rebuild.rebuild`);
* **rebuild (silver)**: the same from the lines already in integer units, as silver holds them
  (what the ``silver_book`` checks run);
* **peer**: cryptofeed's ``Binance.message_handler`` with its L2 book seeded from the same REST
  snapshot (it would otherwise fetch one over the network) and no callbacks: JSON decode with
  Decimals, its update-id check, the book's dict update.

Both live sides end with the same best bid and ask (checked). Rates count depth update frames.

A second table gives the stored bytes per hour of each session's book (a snapshot every 60 s):
the landed JSON lines, and bronze and silver as Iceberg writes them (zstd Parquet) on a local
catalog, through the same functions as the ``bronze_book`` and ``silver_book`` assets.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from bench.bench_parse import DATA, cryptofeed_feed
from streaming.book import BookRecorder
from streaming.recordings import RecordedFrame, read_recording
from streaming.records import DepthUpdate
from streaming.venues.binance.parse import parse_rest_depth, parse_stream_frame
from trading_assets.lib.book.lines import BookDiff, BookSnapshot
from trading_assets.lib.book.rebuild import levels_of, rebuild

ROUNDS = 5
SESSIONS = {
    "BTCUSDT": ("btcusdt_20240808.txt.gz", "btcusdt_20240809.txt.gz"),
    "ETHUSDT": ("ethusdt_20240808.txt.gz", "ethusdt_20240809.txt.gz"),
}


def depth_frames(symbol: str) -> list[RecordedFrame]:
    """The session's depth frames and its REST snapshot, in receive order."""
    frames = [f for name in SESSIONS[symbol] for f in read_recording(DATA / name)]
    return [f for f in frames if f.is_rest or b"@depth" in f.payload[:60]]


def best_seconds(run_once: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run_once()
        best = min(best, time.perf_counter() - start)
    return best


def recorder_run(symbol: str, frames: list[RecordedFrame]) -> tuple[BookRecorder, list[Any]]:
    recorder, lines = BookRecorder(symbol), []
    for frame in frames:
        if frame.is_rest:
            lines += recorder.on_snapshot(parse_rest_depth(frame.payload, symbol, frame.receive_ns))
        else:
            update = parse_stream_frame(frame.payload, frame.receive_ns)
            assert isinstance(update, DepthUpdate)
            lines += recorder.on_update(update)
    return recorder, lines


def cryptofeed_run(symbol: str, frames: list[RecordedFrame]) -> Any:
    """cryptofeed's feed after the frames, its book seeded from the REST snapshot."""
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.types import OrderBook

    feed = cryptofeed_feed([L2_BOOK])
    pair = f"{symbol[:-4]}-USDT"
    rest = next(f for f in frames if f.is_rest)
    snapshot = msgspec.json.decode(rest.payload)
    texts = [(f.payload.decode(), f.receive_ns / 1e9) for f in frames if not f.is_rest]

    async def run() -> None:
        feed.last_update_id[pair] = snapshot["lastUpdateId"]
        feed._l2_book[pair] = OrderBook(
            feed.id, pair,
            bids={Decimal(p): Decimal(q) for p, q in snapshot["bids"]},
            asks={Decimal(p): Decimal(q) for p, q in snapshot["asks"]},
        )  # fmt: skip
        for text, receipt in texts:
            await feed.message_handler(text, None, receipt)

    asyncio.run(run())
    return feed._l2_book[pair]


def session_row(symbol: str) -> str:
    """One session's row: both live books checked to end alike, the rebuild to match."""
    frames = depth_frames(symbol)
    updates = sum(not f.is_rest for f in frames)
    recorder, lines = recorder_run(symbol, frames)
    peer_book = cryptofeed_run(symbol, frames)
    bid, ask = recorder.book.best_bid(), recorder.book.best_ask()
    theirs = (peer_book.book.bids.index(0)[0], peer_book.book.asks.index(0)[0])
    if bid is None or ask is None or (Decimal(bid[0]), Decimal(ask[0])) != theirs:
        raise RuntimeError(f"{symbol}: the two books end apart: {bid, ask} vs {theirs}")
    encoded = [(msgspec.json.encode(x), type(x)) for x in lines]
    diffs = [msgspec.json.decode(b, type=BookDiff) for b, t in encoded if t is BookDiff]
    snaps = [msgspec.json.decode(b, type=BookSnapshot) for b, t in encoded if t is BookSnapshot]
    if not rebuild(diffs, snaps).ok:
        raise RuntimeError(f"{symbol}: the rebuild does not match its snapshots")
    level_diffs, level_snaps = [levels_of(d) for d in diffs], [levels_of(s) for s in snaps]
    recorder_rate = updates / best_seconds(partial(recorder_run, symbol, frames))
    rebuild_rate = len(diffs) / best_seconds(partial(rebuild, diffs, snaps))
    silver_rate = len(diffs) / best_seconds(partial(rebuild, level_diffs, level_snaps))
    peer_rate = updates / best_seconds(partial(cryptofeed_run, symbol, frames))
    return (
        f"{symbol:<9}{updates:>12,}{recorder_rate:>12,.0f}{rebuild_rate:>12,.0f}"
        f"{silver_rate:>16,.0f}{peer_rate:>12,.0f}{recorder_rate / peer_rate:>9.2f}x"
    )


def storage_row(symbol: str, work: Path) -> str:
    """MB per hour of the session's book: landed JSON, bronze and silver."""
    from streaming.landing import BOOK_SNAPSHOTS_KIND, BOOK_UPDATES_KIND, LandingWriter
    from trading_assets.lib.book.lakehouse import load_bronze_book, refine_silver_book
    from trading_assets.lib.lakehouse.landing_layout import list_segments
    from trading_assets.lib.lakehouse.pipeline import Lakehouse
    from trading_assets.lib.lakehouse.tables import open_catalog

    _, lines = recorder_run(symbol, depth_frames(symbol))
    root = work / symbol / "landing"
    for kind, wanted in ((BOOK_UPDATES_KIND, BookDiff), (BOOK_SNAPSHOTS_KIND, BookSnapshot)):
        with LandingWriter(root, kind) as writer:
            for line in lines:
                if type(line) is wanted:
                    writer.write(line)
    landed = sum(seg.path.stat().st_size for kind in (BOOK_UPDATES_KIND, BOOK_SNAPSHOTS_KIND)
                 for seg in list_segments(root, kind))  # fmt: skip
    warehouse = work / symbol / "warehouse"
    warehouse.mkdir(parents=True)
    catalog = open_catalog("bench", {"type": "sql", "uri": f"sqlite:///{work / symbol}/c.db",
                                     "warehouse": warehouse.as_uri()})  # fmt: skip
    lake = Lakehouse(catalog, f"{warehouse.as_uri()}/raw")
    instrument = f"BINANCE:{symbol}"
    bronze = silver = 0
    for day in sorted({seg.day for seg in list_segments(root, BOOK_UPDATES_KIND)}):
        written = load_bronze_book(lake, instrument, day, root)
        bronze += written.updates.data_bytes + written.snapshots.data_bytes
        refined = refine_silver_book(lake, instrument, day)
        silver += refined.updates.data_bytes + refined.snapshots.data_bytes
    times = [line.receive_ns if type(line) is BookDiff else line.taken_ns for line in lines]
    hours = (max(times) - min(times)) / 3.6e12
    per_hour = [f"{b / hours / 1e6:>12.1f}" for b in (landed, bronze, silver)]
    return f"{symbol:<9}{hours * 60:>10.1f}" + "".join(per_hour)


def main() -> None:
    """Print the order-book table."""
    if not DATA.is_dir():
        print(f"skipped: recordings not found at {DATA}")
        return
    print("order book from recorded depth frames, depth updates/s (best of 5 rounds)")
    print(f"{'session':<9}{'updates':>12}{'recorder':>12}{'rebuild':>12}{'rebuild(silver)':>16}"
          f"{'cryptofeed':>12}{'rec/peer':>10}")  # fmt: skip
    for symbol in SESSIONS:
        print(session_row(symbol))
    print("    rebuild counts the landed diffs (those after the sync snapshot); the peer's")
    print("    book is seeded from the same REST snapshot, with no callbacks")
    print()
    print("stored book per hour of session, MB/h (a whole-book snapshot every 60 s)")
    print(f"{'session':<9}{'minutes':>10}{'landed JSON':>12}{'bronze':>12}{'silver':>12}")
    with tempfile.TemporaryDirectory() as work:
        for symbol in SESSIONS:
            print(storage_row(symbol, Path(work)))


if __name__ == "__main__":
    main()
