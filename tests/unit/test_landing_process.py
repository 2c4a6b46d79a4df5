"""Market-data landing through a child process: same files as in process, nothing lost or doubled
when the serving process is killed, and a dead child stops the writes instead of losing them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import msgspec
import pytest

from streaming.landing import (
    BOOK_TICKERS_KIND,
    TRADES_KIND,
    LandingProcess,
    LandingProcessError,
    LandingWriterClosedError,
    last_landed_trade_ids,
)
from streaming.landing.process import ENCODE_BATCH, MARKET_KINDS
from streaming.landing.recovery import live_owners
from streaming.records import BookTicker
from tests.unit.test_landing_writer import DAY, DAY_START_NS, landed_lines, quiet_writer, trade
from trading_assets.lib.lakehouse.landing import list_segments

REPO_ROOT = Path(__file__).resolve().parents[2]
NEXT_DAY_NS = DAY_START_NS + 86_400 * 1_000_000_000


def market_records() -> list:
    """Trades and book tickers of two symbols, across midnight, a few without event time."""
    records: list = []
    for i in range(1, 3_001):
        at = DAY_START_NS + i * 20_000_000 if i <= 2_000 else NEXT_DAY_NS + i
        records.append(trade(i, "BTCUSDT" if i % 3 else "ETHUSDT", at_ns=at))
        records.append(
            BookTicker(
                "ETHUSDT",
                i,
                f"{i}.5",
                "1.0",
                f"{i}.6",
                "2.0",
                receive_ns=at + 7,
                event_ns=None if i % 2 else at,
            )
        )
    return records


def files_by_partition(root: Path) -> dict[tuple[str, str, dt.date], bytes]:
    """Every sealed segment's bytes, concatenated per kind × instrument × day."""
    landed: dict[tuple[str, str, dt.date], bytes] = {}
    for kind in (TRADES_KIND, BOOK_TICKERS_KIND):
        for segment in list_segments(root, kind, include_open=True):
            assert segment.sealed, segment.path
            key = (kind, segment.instrument, segment.day)
            landed[key] = landed.get(key, b"") + segment.path.read_bytes()
    return landed


def test_the_child_lands_the_same_bytes_as_an_in_process_writer(tmp_path):
    records = market_records()
    for kind in (TRADES_KIND, BOOK_TICKERS_KIND):
        with quiet_writer(tmp_path / "in_process", kind) as writer:
            for record in records:
                if (kind == TRADES_KIND) == (type(record) is not BookTicker):
                    writer.write(record)

    landing = LandingProcess(tmp_path / "child")
    outlets = {kind: landing.outlet(kind) for kind in MARKET_KINDS}
    for record in records:
        outlets[BOOK_TICKERS_KIND if type(record) is BookTicker else TRADES_KIND].write(record)
    landing.close()

    expected = files_by_partition(tmp_path / "in_process")
    assert files_by_partition(tmp_path / "child") == expected
    assert {key[1:] for key in expected} == {
        ("BINANCE:BTCUSDT", DAY),
        ("BINANCE:ETHUSDT", DAY),
        ("BINANCE:BTCUSDT", DAY + dt.timedelta(days=1)),
        ("BINANCE:ETHUSDT", DAY + dt.timedelta(days=1)),
    }
    assert sorted(landing.sealed) == sorted(
        s.path for kind in MARKET_KINDS for s in list_segments(tmp_path / "child", kind)
    )
    with pytest.raises(LandingWriterClosedError):
        outlets[TRADES_KIND].write(trade(1))


def test_flush_makes_what_was_written_durable_and_rotate_seals_it(tmp_path):
    with LandingProcess(tmp_path, flush_every_s=3600, send_every_s=3600) as landing:
        for i in range(1, 101):
            landing.outlet(TRADES_KIND).write(trade(i))
        (before,) = list_segments(tmp_path, TRADES_KIND, include_open=True) or [None]
        landing.flush()
        (segment,) = list_segments(tmp_path, TRADES_KIND, include_open=True)
        flushed = [r["trade_id"] for r in landed_lines([segment])]
        sealed = landing.rotate()

    assert before is None  # nothing was shipped before the flush (no sender tick in an hour)
    assert not segment.sealed and flushed == list(range(1, 101))
    assert [p.name for p in sealed] == [segment.path.name.removesuffix(".open")]


def test_lines_written_while_the_sender_ships_arrive_once_and_in_order(tmp_path):
    landing = LandingProcess(tmp_path, send_every_s=0.001)
    outlet = landing.outlet(TRADES_KIND)
    stop = threading.Event()

    def poll() -> None:  # as the sidecar's maintainer does, on top of the sender thread
        while not stop.is_set():
            landing.poll()

    poller = threading.Thread(target=poll)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns between nearly every two operations
    poller.start()
    try:
        for i in range(1, 200_001):
            outlet.write(trade(i))
    finally:
        stop.set()
        poller.join()
        sys.setswitchinterval(switch_interval)
    landing.close()

    ids = [r["trade_id"] for r in landed_lines(list_segments(tmp_path, TRADES_KIND))]
    assert ids == list(range(1, 200_001))


def test_a_record_written_while_another_thread_closes_lands_or_its_write_raises(tmp_path):
    """close() may come from any thread. Here it runs, start to end, just as a write on the
    writing thread is about to queue its record: the record misses the final shipment, so that
    write must raise, not return."""
    landing = LandingProcess(tmp_path)
    outlet = landing.outlet(TRADES_KIND)
    for trade_id in range(1, 11):
        outlet.write(trade(trade_id))
    queue = outlet._append

    def close_first(record: object) -> None:  # the writing thread, about to queue record 11
        closer = threading.Thread(target=landing.close)
        closer.start()
        closer.join(60)
        queue(record)

    outlet._append = close_first
    with pytest.raises(LandingWriterClosedError):
        outlet.write(trade(11))

    landed = [r["trade_id"] for r in landed_lines(list_segments(tmp_path, TRADES_KIND))]
    assert landed == list(range(1, 11))


# Lands BTCUSDT trades through a LandingProcess, prints its child's pid, then after every 500
# the last id shipped to the child; the test SIGKILLs this serving process mid-stream.
SERVING = textwrap.dedent(
    """
    import sys
    from streaming.landing import LandingProcess
    from tests.unit.test_landing_writer import trade

    landing = LandingProcess(sys.argv[1], flush_every_s=3600, rotate_every_s=3600)
    outlet = landing.outlet("trades")
    print(landing.pid, flush=True)
    trade_id = 0
    while True:
        for _ in range(500):
            trade_id += 1
            outlet.write(trade(trade_id))
        landing.poll()  # shipped to the child, not fsynced
        print(trade_id, flush=True)
    """
)


def test_when_the_serving_process_is_killed_its_child_lands_and_seals_what_it_was_sent(tmp_path):
    serving = subprocess.Popen([sys.executable, "-c", SERVING, str(tmp_path)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert serving.stdout is not None
    child_pid = int(serving.stdout.readline())
    shipped = 0
    try:
        while shipped < 20_000:
            line = serving.stdout.readline()
            assert line, "the serving process exited early"
            shipped = int(line)
    finally:
        os.kill(serving.pid, signal.SIGKILL)
        serving.wait()
    # Its stdin closed, the child seals and exits; a new landing waits for it first.
    with LandingProcess(tmp_path) as successor:
        resume = last_landed_trade_ids(tmp_path)
    deadline = time.monotonic() + 30
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)

    ids = [r["trade_id"] for r in landed_lines(list_segments(tmp_path, TRADES_KIND))]
    assert not _alive(child_pid)
    assert all(s.sealed for s in list_segments(tmp_path, TRADES_KIND, include_open=True))
    assert successor.recovered == []  # the child sealed its own segment: nothing was orphaned
    assert ids[-1] >= shipped  # everything shipped before the kill
    assert ids == list(range(1, ids[-1] + 1))  # nothing lost before it, nothing twice
    assert resume == {"BINANCE:BTCUSDT": ids[-1]}  # read after the child had finished


def test_a_dead_child_stops_the_writes_instead_of_losing_them(tmp_path):
    landing = LandingProcess(tmp_path, send_every_s=0.005)
    outlet = landing.outlet(TRADES_KIND)
    outlet.write(trade(1))
    landing.flush()
    os.kill(landing.pid, signal.SIGKILL)

    deadline = time.monotonic() + 10
    with pytest.raises(LandingProcessError, match="landing process"):
        while time.monotonic() < deadline:  # the sender finds the pipe broken on its next ship
            outlet.write(trade(2))
            time.sleep(0.01)
    with pytest.raises(LandingProcessError):
        landing.poll()
    with pytest.raises(LandingProcessError):
        landing.close()


def test_a_child_that_cannot_write_stops_the_landing_with_its_reason(tmp_path):
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the landing root should be")
    landing = LandingProcess(blocked, send_every_s=3600)
    landing.outlet(TRADES_KIND).write(trade(1))

    with pytest.raises(LandingProcessError, match="FileExistsError"):
        landing.flush()
    with pytest.raises(LandingProcessError, match="FileExistsError"):
        landing.outlet(TRADES_KIND).write(trade(2))
    with pytest.raises(LandingProcessError):
        landing.close()


def test_live_owners_are_the_other_live_processes_holding_open_segments(tmp_path):
    day_dir = tmp_path / TRADES_KIND / "BINANCE:BTCUSDT" / DAY.isoformat()
    day_dir.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the short child did not exit"
            time.sleep(0.01)  # exited, not reaped: still in the process table
        for n, pid in enumerate((sleeper.pid, zombie.pid, os.getpid(), 999_999_999)):
            (day_dir / f"{n + 1:020d}-{pid}-0.jsonl.open").write_bytes(b"")
        (day_dir / f"{9:020d}-{sleeper.pid}-1.jsonl").write_bytes(b"")  # sealed: not held

        assert live_owners(tmp_path, (TRADES_KIND,)) == {sleeper.pid}
        assert live_owners(tmp_path, (BOOK_TICKERS_KIND,)) == set()
    finally:
        sleeper.kill()
        sleeper.wait()
        zombie.wait()


def test_landed_lines_must_be_whole(tmp_path):
    writer = quiet_writer(tmp_path)
    line = msgspec.json.encode(trade(1))
    with pytest.raises(ValueError, match="newline"):
        writer.write_lines(line)
    assert writer.write_lines(line + b"\n" + line + b"\n") == 2
    writer.close()
    assert [r["trade_id"] for r in landed_lines(list_segments(tmp_path, TRADES_KIND))] == [1, 1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[1].split()[0] == "Z")


# Lands trades 1..1000 durably, stops its landing child (as a disk stall would), queues 40,000
# more (more than the pipe holds: the sender is left in the middle of a shipment) and prints the
# child's pid; the test then SIGKILLs this serving process and lets the child go on.
CUT_SHORT = textwrap.dedent(
    """
    import os, signal, sys, time
    from streaming.landing import LandingProcess
    from tests.unit.test_landing_writer import trade

    landing = LandingProcess(sys.argv[1], flush_every_s=3600, rotate_every_s=3600)
    outlet = landing.outlet("trades")
    for trade_id in range(1, 1001):
        outlet.write(trade(trade_id))
    landing.flush()
    os.kill(landing.pid, signal.SIGSTOP)
    for trade_id in range(1001, 40001):
        outlet.write(trade(trade_id))
    time.sleep(0.5)  # the sender fills the pipe and waits
    print(landing.pid, flush=True)
    time.sleep(60)
    """
)


def test_a_shipment_cut_short_by_a_kill_lands_its_whole_lines_and_is_sealed(tmp_path):
    serving = subprocess.Popen([sys.executable, "-c", CUT_SHORT, str(tmp_path)], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert serving.stdout is not None
    child_pid = int(serving.stdout.readline())
    os.kill(serving.pid, signal.SIGKILL)
    serving.wait()
    os.kill(child_pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    ids = [r["trade_id"] for r in landed_lines(segments)]
    assert not _alive(child_pid)
    assert segments and all(s.sealed for s in segments)  # sealed by the child itself
    assert len(ids) > 1_000  # what reached the pipe after the flush landed too
    assert ids == list(range(1, ids[-1] + 1))


def test_market_segments_named_by_the_serving_process_are_recovered_at_once(tmp_path):
    # The serving process writes no market segment through its child: one named by its pid
    # was left by an in-process writer before (or by an earlier process with its pid).
    day_dir = tmp_path / TRADES_KIND / "BINANCE:BTCUSDT" / DAY.isoformat()
    day_dir.mkdir(parents=True)
    left = day_dir / f"{1:020d}-{os.getpid()}-0.jsonl.open"
    left.write_bytes(msgspec.json.encode(trade(1)) + b"\n")

    started = time.monotonic()
    with LandingProcess(tmp_path) as landing:
        waited_s = time.monotonic() - started

    assert landing.recovered == [left.with_name(left.name.removesuffix(".open"))]
    assert waited_s < 10  # not the 30 s wait for a live predecessor


def test_a_stalled_child_fails_the_landing_after_the_stall_timeout(tmp_path):
    landing = LandingProcess(tmp_path, stall_timeout_s=0.5)
    outlet = landing.outlet(TRADES_KIND)
    os.kill(landing.pid, signal.SIGSTOP)
    try:
        for trade_id in range(1, 40_001):  # more than the pipe holds
            outlet.write(trade(trade_id))
        started = time.monotonic()
        with pytest.raises(LandingProcessError, match=r"took no input for 0\.5 s"):
            landing.flush()
        failed_after_s = time.monotonic() - started
        with pytest.raises(LandingProcessError):
            outlet.write(trade(40_001))
    finally:
        os.kill(landing.pid, signal.SIGKILL)
    with pytest.raises(LandingProcessError):
        landing.close()
    assert failed_after_s < 10


@pytest.mark.parametrize("found_by", ["shipping", "a full batch"])
def test_a_record_that_cannot_be_encoded_stops_the_landing_and_lands_no_torn_line(
    tmp_path, found_by
):
    landing = LandingProcess(tmp_path)
    outlet = landing.outlet(TRADES_KIND)
    outlet.write(trade(1))
    landing.flush()
    outlet.write(msgspec.structs.replace(trade(2), price=object()))  # queued, not yet encoded
    with pytest.raises(LandingProcessError, match="a trades record could not be encoded"):
        if found_by == "shipping":
            landing.flush()
        else:  # the write that fills the batch encodes it (unless the sender got there first)
            for trade_id in range(3, 3 + ENCODE_BATCH):
                outlet.write(trade(trade_id))
    with pytest.raises(LandingProcessError, match="a trades record could not be encoded"):
        outlet.write(trade(3))
    with pytest.raises(LandingProcessError):
        landing.close()

    segments = list_segments(tmp_path, TRADES_KIND, include_open=True)
    assert segments and all(s.sealed for s in segments)  # the child sealed what it had
    assert [r["trade_id"] for r in landed_lines(segments)] == [1]  # every line whole


def test_closing_while_the_child_is_stalled_fails_instead_of_hanging(tmp_path):
    landing = LandingProcess(tmp_path, stall_timeout_s=0.5)
    outlet = landing.outlet(TRADES_KIND)
    os.kill(landing.pid, signal.SIGSTOP)
    for trade_id in range(1, 40_001):  # more than the pipe holds: the sender gets stuck
        outlet.write(trade(trade_id))
    outcome: list[BaseException | None] = []

    def close() -> None:
        try:
            landing.close()
            outcome.append(None)
        except BaseException as error:  # recorded for the assertion
            outcome.append(error)

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(20)
    stuck = closer.is_alive()
    if stuck:  # let the thread finish so the test run does not hang
        os.kill(landing.pid, signal.SIGKILL)
        closer.join()
    assert not stuck
    assert len(outcome) == 1 and isinstance(outcome[0], LandingProcessError)
    assert "took no input" in str(outcome[0])
