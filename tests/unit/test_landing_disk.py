"""Landing on a real small tmpfs that fills up: writers keep whole records and say the disk is
full instead of dying, the landing child pauses and lands again once resumed, the predictions
log drops what does not fit and goes on, and run starts survive for a restart."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from streaming.config import parse_args
from streaming.landing import (
    PREDICTIONS_KIND,
    TRADES_KIND,
    LandingDiskFullError,
    LandingProcess,
    LandingWriter,
    last_landed_trade_ids,
    maintain,
    resume_points,
)
from streaming.landing.disk import DiskSpace, MinFree, is_disk_full, measure
from streaming.landing.run_starts import (
    RunStartsError,
    read_run_starts,
    record_run_starts,
    run_starts_path,
)
from tests.full_disk import MiB, fill, small_tmpfs
from tests.unit.test_landing_writer import trade
from trading_assets.lib.lakehouse.landing import complete_prefix_length, list_segments

pytestmark = pytest.mark.faults


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", 2 * MiB) as mounted:
        yield mounted


def landed_ids(root: Path, kind: str = TRADES_KIND) -> list[int]:
    """Every landed record's ``trade_id`` (or ``timestamp``), checking each file is whole."""
    ids = []
    for segment in list_segments(root, kind, include_open=True):
        data = segment.path.read_bytes()
        assert complete_prefix_length(data) == len(data), f"{segment.path} ends in a torn record"
        field = "trade_id" if kind == TRADES_KIND else "timestamp"
        ids += [msgspec.json.decode(line)[field] for line in data.splitlines()]
    return ids


@pytest.mark.parametrize(
    ("text", "space", "minimum"),
    [
        ("1GiB", DiskSpace(0, 100 << 30), 1 << 30),
        ("512MiB", DiskSpace(0, 100 << 30), 512 << 20),
        ("200M", DiskSpace(0, 100 << 30), 200 << 20),
        ("1048576", DiskSpace(0, 100 << 30), 1 << 20),
        ("5%", DiskSpace(0, 200 << 30), 10 << 30),
        ("0", DiskSpace(0, 1 << 30), 0),
    ],
)
def test_the_minimum_free_space_is_a_size_or_a_share_of_the_disk(text, space, minimum):
    min_free = MinFree.parse(text)

    assert min_free.bytes_of(space) == minimum
    assert min_free.resume_bytes(space) > minimum  # a margin, so a resume does not flap


def test_a_bad_minimum_is_refused_in_one_line_that_names_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("TRADING_LANDING_MIN_FREE", "plenty")

    with pytest.raises(SystemExit) as exit_:
        parse_args([])

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert "TRADING_LANDING_MIN_FREE" in line and "'plenty'" in line


def test_free_space_is_measured_on_the_landing_disk_before_the_folder_exists(disk):
    fill(disk, 512 << 10)

    space = measure(disk / "landing" / "not yet")

    assert space.total_bytes == 2 * MiB
    assert 0 < space.free_bytes <= 512 << 10


def test_a_writer_that_fills_its_disk_keeps_whole_records_and_says_the_disk_is_full(disk):
    writer = LandingWriter(disk, TRADES_KIND, flush_every_s=3600, inline_poll=False)
    written = 0
    with pytest.raises(LandingDiskFullError, match="no space left to land trades") as raised:
        while written < 20_000:  # about 4 MiB of lines for a 2 MiB disk
            for trade_id in range(written + 1, written + 301):
                writer.write(trade(trade_id))
            written += 300
            writer.flush()
    landed = landed_ids(disk)  # what reached the file before it was full: whole records only
    dropped = writer.drop_unwritten()
    writer.close()

    assert is_disk_full(raised.value)
    assert landed and landed == list(range(1, len(landed) + 1))
    assert dropped == written - len(landed) > 0
    assert landed_ids(disk) == landed  # sealed as it was
    assert all(s.sealed for s in list_segments(disk, TRADES_KIND, include_open=True))


def test_the_landing_child_pauses_on_a_full_disk_and_lands_again_once_resumed(disk):
    filler = fill(disk, 256 << 10)
    landing = LandingProcess(disk / "landing", send_every_s=3600)
    outlet, sent = landing.outlet(TRADES_KIND), 0
    while landing.child_paused() is None and sent < 20_000:
        for _ in range(500):
            sent += 1
            outlet.write(trade(sent))
        landing.flush()
    paused = landing.child_paused()
    before = landed_ids(disk / "landing")

    filler.unlink()  # room again: the missed trades, then new ones, land after a resume
    landing.resume()
    for trade_id in range(before[-1] + 1, sent + 101):
        outlet.write(trade(trade_id))
    landing.close()

    assert paused is not None and "no space left" in paused
    assert before == list(range(1, len(before) + 1)) and len(before) < sent
    assert landed_ids(disk / "landing") == list(range(1, sent + 101))
    assert all(s.sealed for s in list_segments(disk / "landing", TRADES_KIND, include_open=True))


async def test_the_predictions_log_drops_what_does_not_fit_and_goes_on(disk):
    filler = fill(disk, 0)
    writer = LandingWriter(disk / "landing", PREDICTIONS_KIND, flush_every_s=0, inline_poll=False)
    maintainer = asyncio.create_task(maintain([writer], interval_s=0.01))
    for timestamp in range(1, 101):
        writer.write({"symbol": "BINANCE:BTCUSDT", "timestamp": timestamp, "signal": 0.5})
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.1)
    still_running = not maintainer.done()

    filler.unlink()
    for timestamp in range(101, 201):
        writer.write({"symbol": "BINANCE:BTCUSDT", "timestamp": timestamp, "signal": 0.5})
    await asyncio.sleep(0.1)
    maintainer.cancel()
    await asyncio.gather(maintainer, return_exceptions=True)

    assert still_running  # a full disk did not end the maintainer (nor the sidecar with it)
    assert landed_ids(disk / "landing", PREDICTIONS_KIND) == list(range(101, 201))


def test_an_instrument_that_landed_nothing_resumes_where_its_run_began(tmp_path):
    with LandingWriter(tmp_path, TRADES_KIND) as writer:
        for trade_id in range(1, 11):
            writer.write(trade(trade_id, "BTCUSDT"))
    record_run_starts(tmp_path, {"BINANCE:BTCUSDT": 1, "BINANCE:ETHUSDT": 500})

    assert last_landed_trade_ids(tmp_path) == {"BINANCE:BTCUSDT": 10}  # ETHUSDT alone: fresh
    assert resume_points(tmp_path) == {"BINANCE:BTCUSDT": 10, "BINANCE:ETHUSDT": 499}
    record_run_starts(tmp_path, {"BINANCE:BTCUSDT": 11})  # the next run, resumed: nothing changes
    assert resume_points(tmp_path) == {"BINANCE:BTCUSDT": 10, "BINANCE:ETHUSDT": 499}


def test_run_starts_are_kept_whole_when_the_disk_is_full(disk):
    record_run_starts(disk, {"BINANCE:BTCUSDT": 7})
    fill(disk, 0)

    with pytest.raises(OSError) as raised:
        record_run_starts(disk, {"BINANCE:ETHUSDT": 9})

    assert is_disk_full(raised.value)
    assert read_run_starts(disk) == {"BINANCE:BTCUSDT": 7}
    assert [p.name for p in disk.iterdir() if p.name.startswith(".run")] == [".run-starts.json"]


def test_an_unreadable_run_starts_file_is_named(tmp_path):
    run_starts_path(tmp_path).write_text('{"BINANCE:BTCUSDT": "seven"}')

    with pytest.raises(RunStartsError, match=str(run_starts_path(tmp_path))):
        resume_points(tmp_path)
    os.remove(run_starts_path(tmp_path))
    assert resume_points(tmp_path) == {}
