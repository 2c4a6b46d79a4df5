"""The sidecar's L2 book capture against the simulator: it subscribes to depth by default, keeps
each book by Binance's procedure, and lands segments of diffs and snapshots that rebuild to the
live book at every snapshot, and to the venue's own best prices (its book tickers, a separate
stream) after every diff; a dropped connection ends a segment and the next one names the gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.landing import BOOK_SNAPSHOTS_KIND, BOOK_TICKERS_KIND, BOOK_UPDATES_KIND
from streaming.records import BookTicker
from streaming.simulator.server import run_simulator_in_thread
from tests.services import free_port
from trading_assets.lib.book.landed import read_landed_book
from trading_assets.lib.book.lines import PERIODIC, SYNC, BookDiff, BookSnapshot
from trading_assets.lib.book.rebuild import Book, levels_of, rebuild
from trading_assets.lib.features.depth import COVERED, depth_rows
from trading_assets.lib.features.incremental import FeatureRow
from trading_assets.lib.features.live import decimal_units
from trading_assets.lib.lakehouse.landing_layout import list_segments, read_complete_lines

pytestmark = pytest.mark.backtest
INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")


def lines_landed(sidecar: Sidecar, instrument: str, kind: str) -> float:
    metric = sidecar.metrics.registry.get_sample_value(
        "sidecar_book_lines_total", {"symbol": instrument, "kind": kind}
    )
    return metric or 0.0


def snapshots_landed(sidecar: Sidecar, at_least: dict[str, float]) -> bool:
    return all(lines_landed(sidecar, i, BOOK_SNAPSHOTS_KIND) >= n for i, n in at_least.items())


def recording(sidecar: Sidecar) -> bool:
    return sidecar.book is not None and all(r.recording for r in sidecar.book.recorders.values())


def gaps(sidecar: Sidecar, instrument: str) -> float:
    metric = sidecar.metrics.registry.get_sample_value(
        "sidecar_book_gaps_total", {"symbol": instrument}
    )
    return metric or 0.0


async def until(condition, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def landed(root: Path, instrument: str) -> tuple[list[BookDiff], list[BookSnapshot]]:
    days = {s.day for s in list_segments(root, BOOK_SNAPSHOTS_KIND, instrument=instrument)}
    diffs: list[BookDiff] = []
    snapshots: list[BookSnapshot] = []
    for day in sorted(days):
        day_diffs, day_snapshots = read_landed_book(root, instrument, day)
        diffs += day_diffs
        snapshots += day_snapshots
    return diffs, snapshots


def landed_tickers(root: Path, instrument: str) -> dict[int, BookTicker]:
    decoder = msgspec.json.Decoder(BookTicker)
    return {
        ticker.update_id: ticker
        for segment in list_segments(root, BOOK_TICKERS_KIND, instrument=instrument)
        for line in read_complete_lines(segment.location).splitlines()
        if (ticker := decoder.decode(line))
    }


def observe_depth_rows(sidecar: Sidecar) -> dict[tuple[str, int], dict]:
    """Every depth row the sidecar hands its online writer, by (instrument, event time): the
    writer is real, this only watches what reaches it."""
    seen: dict[tuple[str, int], dict] = {}
    submit = sidecar.online_writer.submit

    def watched(row: FeatureRow) -> None:
        if COVERED in row.values:
            seen[(row.symbol, row.event_timestamp_us)] = row.values
        submit(row)

    sidecar.online_writer.submit = watched  # type: ignore[method-assign]
    return seen


def best_after_every_diff(
    diffs: list[BookDiff], snapshots: list[BookSnapshot]
) -> dict[int, tuple[int | None, int | None, int, int]]:
    """Per update id a diff ended at: the rebuilt best bid and ask prices and their sizes."""
    found = {}
    for sync in (s for s in snapshots if s.kind == SYNC):
        book = Book.of(sync)
        for diff in sorted((d for d in diffs if d.segment == sync.segment),
                           key=lambda d: d.final_update_id):  # fmt: skip
            book.apply(diff)
            bid, ask = book.best()
            found[diff.final_update_id] = (bid, ask, book.bids.get(bid, 0), book.asks.get(ask, 0))
    return found


async def test_the_sidecar_lands_books_that_rebuild_to_the_live_book_and_the_tickers(tmp_path):
    with run_simulator_in_thread(symbols=["BTCUSDT", "ETHUSDT"], seed=5,
                                 trades_per_day=3_000_000) as market:  # fmt: skip
        config = SidecarConfig(
            instruments=INSTRUMENTS,
            ws_base_url=market.ws_url,
            rest_base_url=market.http_url,
            data_root=tmp_path / "data",
            tracking_uri=None,
            api_port=free_port(),
            book_snapshot_every_s=0.5,
        )
        sidecar = Sidecar(config)
        pushed = observe_depth_rows(sidecar)
        task = asyncio.create_task(sidecar.run())
        try:
            # Act: a few snapshots' worth, a dropped connection, then a few more
            await until(lambda: snapshots_landed(sidecar, at_least=dict.fromkeys(INSTRUMENTS, 6)))
            market.set_faults(drop_after_messages=40)
            await until(lambda: all(gaps(sidecar, i) >= 1 for i in INSTRUMENTS))
            market.set_faults(drop_after_messages=None)
            before = {i: lines_landed(sidecar, i, BOOK_SNAPSHOTS_KIND) for i in INSTRUMENTS}
            more = {i: before[i] + 4 for i in INSTRUMENTS}
            await until(lambda: snapshots_landed(sidecar, more) and recording(sidecar))
        finally:
            sidecar.stop()
            await asyncio.wait_for(task, 30)

    root = config.landing_root
    assert not list(root.rglob("*.open"))
    for instrument in INSTRUMENTS:
        diffs, snapshots = landed(root, instrument)
        report = rebuild(diffs, snapshots)
        syncs = [s for s in snapshots if s.kind == SYNC]

        # Assert: every landed line is accounted for: the segments rebuild exactly, never crossed
        assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
        assert report.diffs_applied == len(diffs) >= 8
        assert report.snapshots_matched == len([s for s in snapshots if s.kind == PERIODIC]) >= 8
        assert report.segments == len(syncs) >= 2
        # The dropped connection broke the diff chain; the segment after it says where
        assert syncs[0].gap is None
        assert any(s.gap is not None and "does not continue" in s.gap for s in syncs[1:])
        assert lines_landed(sidecar, instrument, BOOK_UPDATES_KIND) == len(diffs)

        # Assert: after every diff the rebuilt best levels are the venue's book ticker of that
        # update id (a separate stream, landed separately)
        tickers = landed_tickers(root, instrument)
        compared = 0
        for update_id, (bid, ask, bid_qty, ask_qty) in best_after_every_diff(
            diffs, snapshots
        ).items():
            ticker = tickers.get(update_id)
            if ticker is None:  # sent while the connection was down
                continue
            assert (bid, ask, bid_qty, ask_qty) == (
                decimal_units(ticker.bid_price), decimal_units(ticker.ask_price),
                decimal_units(ticker.bid_qty), decimal_units(ticker.ask_qty),
            ), update_id  # fmt: skip
            compared += 1
        assert compared >= len(diffs) // 2  # (tickers sent while the connection was down are lost)

        # Assert: the depth rows the sidecar pushed live are the batch rows of the lines it
        # landed, second for second, the dropped connection's uncovered seconds included
        batch = depth_rows(instrument, [levels_of(d) for d in diffs],
                           [levels_of(s) for s in snapshots])  # fmt: skip
        assert len(batch) >= 5
        assert any(row.values[COVERED] == 0.0 for row in batch) or all(
            s.lost_ns is None for s in syncs
        )
        for row in batch:
            live = pushed[(instrument, row.event_timestamp_us)]
            assert live.keys() == row.values.keys()
            for name, value in row.values.items():
                assert (value is None) == (live[name] is None), (name, row.event_timestamp_us)
                assert value is None or abs(value - live[name]) <= 1e-9, name
