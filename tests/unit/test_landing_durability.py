"""Crash safety: a SIGKILLed writer loses at most its unflushed records, and restart recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from streaming.landing import TRADES_KIND, LandingWriter, last_landed_trade_ids
from tests.unit.test_landing_writer import landed_lines
from trading_assets.lib.lakehouse.landing import list_segments

REPO_ROOT = Path(__file__).resolve().parents[2]
FLUSHED_BEFORE_KILL = 3_000

# Lands BTCUSDT trades 1, 2, 3, ... forever, small segments, and after each explicit flush
# prints the last id it made durable.
CHILD = textwrap.dedent(
    """
    import sys
    from streaming.landing import LandingWriter
    from tests.unit.test_landing_writer import trade

    writer = LandingWriter(
        sys.argv[1], "trades", flush_every_s=3600, rotate_every_s=3600, max_segment_bytes=40_000
    )
    trade_id = 0
    while True:
        for _ in range(97):
            trade_id += 1
            writer.write(trade(trade_id))
        writer.flush()
        print(trade_id, flush=True)
        for _ in range(13):  # queued, never flushed before the next round
            trade_id += 1
            writer.write(trade(trade_id))
    """
)


@pytest.fixture
def killed_writer(tmp_path) -> tuple[Path, int, list[Path]]:
    """Land trades in a child, SIGKILL it mid-stream; return (root, last flushed id, open files
    seen while the child was alive, and left alone by a recovery run then)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    flushed = 0
    try:
        while flushed < FLUSHED_BEFORE_KILL:
            line = child.stdout.readline()
            assert line, "the writer child exited early"
            flushed = int(line)
        # Frozen, the child is alive but cannot rotate its own segment between the two looks
        # below (with 40 kB segments it rotates every few ms, and under load it did).
        os.kill(child.pid, signal.SIGSTOP)
        alive_open = [
            s.path for s in list_segments(tmp_path, TRADES_KIND, include_open=True) if not s.sealed
        ]
        # A second process starting meanwhile must not seal a live writer's segment.
        LandingWriter(tmp_path, TRADES_KIND).close()
        still_open = [p for p in alive_open if p.exists()]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert still_open == alive_open
    return tmp_path, flushed, alive_open


def landed_ids(root: Path) -> list[int]:
    return [r["trade_id"] for r in landed_lines(list_segments(root, TRADES_KIND))]


def test_after_sigkill_every_flushed_trade_survives_and_restart_seals_the_rest(killed_writer):
    root, flushed, alive_open = killed_writer

    before_restart = last_landed_trade_ids(root)
    writer = LandingWriter(root, TRADES_KIND)
    writer.close()

    ids = landed_ids(root)
    segments = list_segments(root, TRADES_KIND, include_open=True)
    assert len(alive_open) == 1
    assert all(segment.sealed for segment in segments)
    assert [p.name for p in writer.recovered] == [alive_open[0].name.removesuffix(".open")]
    assert ids[-1] >= flushed
    assert ids == list(range(1, ids[-1] + 1))  # nothing lost before it, nothing twice
    assert before_restart == last_landed_trade_ids(root) == {"BINANCE:BTCUSDT": ids[-1]}


@pytest.mark.parametrize("torn_tail", [b'{"symbol":"BTCUSDT","trade_id":99', b"\x00" * 300])
def test_a_torn_last_record_is_ignored_and_cut_off_on_restart(killed_writer, torn_tail):
    root, _, alive_open = killed_writer
    (open_segment,) = alive_open
    left = open_segment.read_bytes()
    # SIGKILL can cut the child's own last write short (the kernel stops a write to the page
    # cache between pages when a fatal signal is pending): recovery keeps whole records only.
    intact = left[: left.rfind(b"\n") + 1]
    complete_ids = [msgspec.json.decode(line)["trade_id"] for line in intact.splitlines()]
    with open_segment.open("ab") as stream:  # what a crash in the middle of a write leaves
        stream.write(torn_tail)

    seen_torn = last_landed_trade_ids(root)
    LandingWriter(root, TRADES_KIND).close()

    sealed = open_segment.with_name(open_segment.name.removesuffix(".open"))
    assert seen_torn == {"BINANCE:BTCUSDT": complete_ids[-1]}
    assert sealed.read_bytes() == intact
    assert last_landed_trade_ids(root) == {"BINANCE:BTCUSDT": complete_ids[-1]}
    assert landed_ids(root) == list(range(1, complete_ids[-1] + 1))


def test_a_segment_without_one_complete_record_is_removed_on_restart(tmp_path):
    day_dir = tmp_path / TRADES_KIND / "BINANCE:BTCUSDT" / "2024-03-01"
    day_dir.mkdir(parents=True)
    torn = day_dir / f"{1:020d}-999999999-0.jsonl.open"  # a pid that cannot be alive
    torn.write_bytes(b'{"symbol":"BTC')

    writer = LandingWriter(tmp_path, TRADES_KIND)
    writer.close()

    assert not torn.exists()
    assert writer.recovered == []
    assert last_landed_trade_ids(tmp_path) == {}
