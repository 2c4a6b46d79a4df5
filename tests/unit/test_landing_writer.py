"""LandingWriter: segments per instrument × day, rotation by size and age, sealing, predictions."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import stat
import threading
import time
from pathlib import Path

import msgspec
import pytest

from streaming.landing import (
    PREDICTIONS_KIND,
    TRADES_KIND,
    LandingWriter,
    LandingWriterClosedError,
    last_landed_trade_ids,
    maintain,
)
from streaming.records import BookTicker, Trade
from trading_assets.lib.lakehouse.landing import list_segments

DAY = dt.date(2024, 3, 1)
DAY_START_NS = int(dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def trade(trade_id: int, symbol: str = "BTCUSDT", at_ns: int | None = None) -> Trade:
    trade_ns = DAY_START_NS + trade_id * 1_000_000 if at_ns is None else at_ns
    return Trade(
        symbol=symbol,
        trade_id=trade_id,
        price=f"{60000 + trade_id % 100}.{trade_id % 100:02d}",
        quantity="0.00120000",
        is_buyer_maker=trade_id % 3 == 0,
        trade_ns=trade_ns,
        event_ns=trade_ns + 1_000_000,
        receive_ns=trade_ns + 2_000_000,
    )


def landed_lines(segments) -> list[dict]:
    return [
        msgspec.json.decode(line)
        for segment in segments
        for line in segment.path.read_bytes().splitlines()
    ]


def quiet_writer(root: Path, kind: str = TRADES_KIND, **options) -> LandingWriter:
    # Nothing time-driven unless a test asks for it.
    settings = {"flush_every_s": 3600.0, "rotate_every_s": 3600.0, **options}
    return LandingWriter(root, kind, **settings)


def test_records_land_per_instrument_and_day_and_are_sealed_on_close(tmp_path):
    midnight_next = DAY_START_NS + 86_400 * 1_000_000_000
    records = [trade(1), trade(2, "ETHUSDT"), trade(3), trade(4, at_ns=midnight_next)]

    with quiet_writer(tmp_path) as writer:
        for record in records:
            writer.write(record)

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    placed = {(s.instrument, s.day): [r["trade_id"] for r in landed_lines([s])] for s in segments}
    assert all(segment.sealed for segment in segments)
    assert placed == {
        ("BINANCE:BTCUSDT", DAY): [1, 3],
        ("BINANCE:BTCUSDT", DAY + dt.timedelta(days=1)): [4],
        ("BINANCE:ETHUSDT", DAY): [2],
    }
    assert landed_lines(segments)[0] == msgspec.to_builtins(records[0])


def test_nothing_reaches_disk_before_a_flush_and_everything_after_it(tmp_path):
    writer = quiet_writer(tmp_path)
    for trade_id in range(1, 11):
        writer.write(trade(trade_id))

    before = list_segments(tmp_path, TRADES_KIND, include_open=True)
    writer.flush()
    after = list_segments(tmp_path, TRADES_KIND, include_open=True)

    assert before == []
    assert [s.sealed for s in after] == [False]
    assert [r["trade_id"] for r in landed_lines(after)] == list(range(1, 11))
    assert last_landed_trade_ids(tmp_path) == {"BINANCE:BTCUSDT": 10}
    writer.close()


def test_rotation_by_size_keeps_every_record_once_in_write_order(tmp_path):
    line_bytes = len(msgspec.json.encode(trade(100))) + 1
    with quiet_writer(tmp_path, max_segment_bytes=10 * line_bytes) as writer:
        for trade_id in range(100, 200):
            writer.write(trade(trade_id))

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    sizes = [segment.path.stat().st_size for segment in segments]
    assert len(segments) >= 9
    assert max(sizes) <= 11 * line_bytes
    assert [r["trade_id"] for r in landed_lines(segments)] == list(range(100, 200))


def test_rotation_by_age_seals_a_segment_once_it_is_old_enough(tmp_path):
    writer = quiet_writer(tmp_path, flush_every_s=0.0, rotate_every_s=0.05)
    writer.write(trade(1))
    first = list_segments(tmp_path, TRADES_KIND, include_open=True)
    time.sleep(0.1)

    writer.poll()
    sealed = list_segments(tmp_path, TRADES_KIND)
    writer.write(trade(2))
    writer.close()

    assert [s.sealed for s in first] == [False]
    assert [s.stem for s in sealed] == [first[0].stem]
    assert [r["trade_id"] for r in landed_lines(list_segments(tmp_path, TRADES_KIND))] == [1, 2]


def test_rotate_seals_now_and_new_writes_start_a_later_segment(tmp_path):
    writer = quiet_writer(tmp_path)
    writer.write(trade(1))
    sealed = writer.rotate()
    writer.write(trade(2))
    writer.close()

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    assert [p.name for p in sealed] == [segments[0].path.name]
    assert [s.stem for s in segments] == sorted(s.stem for s in segments)
    assert [r["trade_id"] for r in landed_lines(segments)] == [1, 2]
    with pytest.raises(LandingWriterClosedError):
        writer.write(trade(3))


def test_predictions_land_as_json_objects_dated_by_their_event_time(tmp_path):
    prediction = {
        "symbol": "binance:ethusdt",
        "event_ns": DAY_START_NS + 5,
        "model": "champion",
        "y": 0.1,
    }

    with quiet_writer(tmp_path, PREDICTIONS_KIND) as writer:
        writer.write(prediction)
        with pytest.raises(ValueError, match="symbol"):
            writer.write({"event_ns": DAY_START_NS})

    (segment,) = list_segments(tmp_path, PREDICTIONS_KIND)
    assert (segment.instrument, segment.day) == ("BINANCE:ETHUSDT", DAY)
    assert landed_lines([segment]) == [prediction]


def test_book_tickers_without_event_time_are_dated_by_receive_time(tmp_path):
    ticker = BookTicker("BTCUSDT", 7, "1.0", "2.0", "1.1", "3.0", receive_ns=DAY_START_NS + 9)

    with quiet_writer(tmp_path, "book_tickers") as writer:
        writer.write(ticker)

    (segment,) = list_segments(tmp_path, "book_tickers")
    assert segment.day == DAY
    assert landed_lines([segment])[0]["update_id"] == 7


def test_writes_from_one_thread_while_another_polls_lose_nothing(tmp_path):
    writer = LandingWriter(
        tmp_path, TRADES_KIND, flush_every_s=0.0, rotate_every_s=0.01, inline_poll=False
    )
    done = threading.Event()

    def poll_until_done() -> None:
        while not done.is_set():
            writer.poll()

    poller = threading.Thread(target=poll_until_done)
    poller.start()
    for trade_id in range(1, 3001):
        writer.write(trade(trade_id))
    done.set()
    poller.join()
    writer.close()

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    assert all(segment.sealed for segment in segments)
    assert [r["trade_id"] for r in landed_lines(segments)] == list(range(1, 3001))


async def test_maintain_flushes_from_a_thread_and_seals_everything_when_cancelled(tmp_path):
    writer = LandingWriter(
        tmp_path, TRADES_KIND, flush_every_s=0.0, rotate_every_s=3600, inline_poll=False
    )
    task = asyncio.create_task(maintain([writer], interval_s=0.01))
    for trade_id in range(1, 101):
        writer.write(trade(trade_id))
    while not list_segments(tmp_path, TRADES_KIND, include_open=True):  # the first flush
        await asyncio.sleep(0.01)
    flushed_while_running = list_segments(tmp_path, TRADES_KIND, include_open=True)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    assert [s.sealed for s in flushed_while_running] == [False]
    assert all(segment.sealed for segment in segments)
    assert [r["trade_id"] for r in landed_lines(segments)] == list(range(1, 101))
    with pytest.raises(LandingWriterClosedError):
        writer.write(trade(101))


def test_each_record_lands_as_its_own_json_line_byte_for_byte(tmp_path):
    records = [trade(1), trade(2, "ETHUSDT"), trade(3)]
    ticker = BookTicker("BTCUSDT", 7, "1.0", "2.0", "1.1", "3.0", receive_ns=DAY_START_NS + 9)

    with quiet_writer(tmp_path) as writer, quiet_writer(tmp_path, "book_tickers") as tickers:
        for record in records:
            writer.write(record)
        tickers.write(ticker)

    def landed_bytes(kind: str, instrument: str) -> bytes:
        (segment,) = [s for s in list_segments(tmp_path, kind) if s.instrument == instrument]
        return segment.path.read_bytes()

    encode = msgspec.json.encode
    assert (
        landed_bytes(TRADES_KIND, "BINANCE:BTCUSDT")
        == encode(records[0]) + b"\n" + encode(records[2]) + b"\n"
    )
    assert landed_bytes(TRADES_KIND, "BINANCE:ETHUSDT") == encode(records[1]) + b"\n"
    assert landed_bytes("book_tickers", "BINANCE:BTCUSDT") == encode(ticker) + b"\n"


def test_a_mapping_lands_as_it_was_when_written(tmp_path):
    prediction = {"symbol": "BINANCE:BTCUSDT", "event_ns": DAY_START_NS + 5, "y": 0.1}

    with quiet_writer(tmp_path, PREDICTIONS_KIND) as writer:
        writer.write(prediction)
        prediction["y"] = 0.2  # the caller reuses its dict before anything was flushed

    assert landed_lines(list_segments(tmp_path, PREDICTIONS_KIND)) == [{**prediction, "y": 0.1}]


def test_a_record_json_cannot_hold_fails_its_write_and_the_others_land(tmp_path):
    class Odd(msgspec.Struct, frozen=True):
        symbol: str
        event_ns: int
        payload: object

    writer = LandingWriter(tmp_path, "odd", inline_poll=False, flush_every_s=3600)
    writer.write(Odd("BTCUSDT", DAY_START_NS, 1))
    with pytest.raises(TypeError):
        writer.write(Odd("BTCUSDT", DAY_START_NS + 1, object()))
    writer.write(Odd("BTCUSDT", DAY_START_NS + 2, 3))
    writer.close()

    assert [r["payload"] for r in landed_lines(list_segments(tmp_path, "odd"))] == [1, 3]


def test_a_poll_from_a_thread_writes_what_is_queued_before_the_flush_is_due(tmp_path):
    writer = LandingWriter(
        tmp_path, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600, inline_poll=False
    )
    for trade_id in range(1, 6):
        writer.write(trade(trade_id))

    queued = list_segments(tmp_path, TRADES_KIND, include_open=True)
    writer.poll()  # written (no fsync yet): a flush then has only the newest records left
    polled = landed_lines(list_segments(tmp_path, TRADES_KIND, include_open=True))
    writer.write(trade(6))
    writer.flush()
    flushed = landed_lines(list_segments(tmp_path, TRADES_KIND, include_open=True))
    writer.close()

    assert queued == []
    assert [r["trade_id"] for r in polled] == [1, 2, 3, 4, 5]
    assert [r["trade_id"] for r in flushed] == [1, 2, 3, 4, 5, 6]


def test_a_burst_is_fsynced_once_max_unsynced_bytes_were_written(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the real fsync, and how much of a segment it covered
        real_fsync(fd)
        status = os.fstat(fd)
        if stat.S_ISREG(status.st_mode):  # not the folders' fsyncs
            synced.append(status.st_size)

    monkeypatch.setattr(os, "fsync", fsync)
    line_bytes = len(msgspec.json.encode(trade(1))) + 1  # the others differ by a byte or two
    size_after = list(
        itertools.accumulate(len(msgspec.json.encode(trade(i))) + 1 for i in range(1, 21))
    )
    writer = LandingWriter(tmp_path, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600,
                           inline_poll=False, max_unsynced_bytes=10 * line_bytes)  # fmt: skip
    for batch in range(5):  # 4 lines a poll: 12 unsynced at the third poll
        for trade_id in range(batch * 4 + 1, batch * 4 + 5):
            writer.write(trade(trade_id))
        writer.poll()
    (segment,) = list_segments(tmp_path, TRADES_KIND, include_open=True)
    written, synced_before_close = segment.path.stat().st_size, list(synced)
    writer.close()

    assert written == size_after[19]
    assert synced_before_close == [size_after[11]]  # 16 and 20 wait for the flush or the seal
    assert synced[-1] == size_after[19]
