"""The landing shipper: every sealed segment reaches the landing location once, on real folders.

The location here is a second local folder (storage writes it atomically, as it writes S3); the
production-profile tests ship to a real S3 server (tests/integration/test_landing_shipper_s3.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streaming.landing import PREDICTIONS_KIND, TRADES_KIND, LandingWriter
from streaming.landing.shipper import (
    LedgerBusyError,
    Shipper,
    ShipperState,
    ledger_path,
    needs_shipping,
)
from streaming.landing.shipping import ShipperProcess
from streaming.metrics import SidecarMetrics
from tests.unit.test_landing_writer import trade
from trading_assets.lib.lakehouse.landing import list_segments


def land(root: Path, batches: int, per_batch: int = 10, kind: str = TRADES_KIND) -> None:
    """``batches`` sealed segments of ``kind``, as the sidecar's rotation leaves them."""
    with LandingWriter(root, kind, flush_every_s=3600, rotate_every_s=3600) as writer:
        for batch in range(batches):
            for trade_id in range(batch * per_batch + 1, (batch + 1) * per_batch + 1):
                writer.write(trade(trade_id))
            writer.rotate()


def files_under(root: Path) -> dict[str, bytes]:
    """Every visible file below ``root`` by its path relative to it (ledgers are hidden)."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }


def sealed_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in files_under(root).items() if k.endswith(".jsonl")}


def test_a_location_elsewhere_needs_shipping_and_the_landing_folder_itself_does_not(tmp_path):
    landing = tmp_path / "landing"

    assert not needs_shipping(landing, str(landing))
    assert not needs_shipping(landing, landing.as_uri())
    assert not needs_shipping(landing, f"{tmp_path}/other/../landing/")
    assert needs_shipping(landing, str(tmp_path / "shipped"))
    assert needs_shipping(landing, "s3://bucket/landing")


def test_sealed_segments_of_every_kind_arrive_once_and_open_ones_wait(tmp_path):
    # Arrange: sealed trades and predictions, and a trades segment still being written
    landing, target = tmp_path / "landing", tmp_path / "shipped"
    land(landing, 3)
    land(landing, 2, kind=PREDICTIONS_KIND)
    writer = LandingWriter(landing, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600)
    writer.write(trade(999))
    writer.flush()

    # Act
    with Shipper(landing, str(target)) as shipper:
        first = shipper.ship_backlog()
        again = shipper.ship_backlog()
        writer.close()
        after_seal = shipper.ship_backlog()

    # Assert: the location holds exactly the sealed segments, byte for byte, at the same keys
    assert first.shipped == 5 and first.backlog == 0 and first.last_error is None
    assert again.shipped == 5 and again.shipped_bytes == first.shipped_bytes
    assert after_seal.shipped == 6
    assert files_under(target) == sealed_files(landing)
    assert len(files_under(target)) == 6
    ledger = ledger_path(landing, str(target)).read_text().splitlines()
    assert sorted(ledger) == sorted(files_under(target)) and len(set(ledger)) == 6
    # Shipped segments stay in the landing folder.
    assert len(list_segments(landing, TRADES_KIND)) == 4


def test_a_torn_ledger_line_is_cut_off_and_its_segment_shipped_again(tmp_path):
    # Arrange: three segments shipped, then a crash while the third one's line was appended
    landing, target = tmp_path / "landing", tmp_path / "shipped"
    land(landing, 3)
    with Shipper(landing, str(target)) as shipper:
        shipper.ship_backlog()
    ledger = ledger_path(landing, str(target))
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:2]) + lines[2][:9])
    torn_key = lines[2].decode().strip()
    (target / torn_key).unlink()  # so that shipping it again shows

    # Act
    with Shipper(landing, str(target)) as shipper:
        state = shipper.ship_backlog()

    # Assert
    assert state.shipped == 3 and state.backlog == 0
    assert files_under(target) == sealed_files(landing)
    assert ledger.read_bytes() == b"".join(lines)


def test_a_second_shipper_of_the_same_folder_and_location_is_refused(tmp_path):
    landing = tmp_path / "landing"
    land(landing, 1)

    with Shipper(landing, str(tmp_path / "one")):
        with pytest.raises(LedgerBusyError):
            Shipper(landing, str(tmp_path / "one"))
        with Shipper(landing, str(tmp_path / "two")) as elsewhere:
            elsewhere_state = elsewhere.ship_backlog()

    assert elsewhere_state.shipped == 1
    with Shipper(landing, str(tmp_path / "one")) as released:  # the lock went with its holder
        assert released.ship_backlog().shipped == 1


def test_a_failing_location_is_reported_and_the_next_pass_ships_everything(tmp_path):
    # Arrange: the location's folder cannot be made (a file is in its way)
    landing, blocked = tmp_path / "landing", tmp_path / "blocked"
    land(landing, 4)
    blocked.write_bytes(b"not a folder")
    target = str(blocked / "landing")

    # Act
    with Shipper(landing, target) as shipper:
        failed = shipper.ship_backlog()
        blocked.unlink()
        recovered = shipper.ship_backlog()

    # Assert
    assert failed.shipped == 0 and failed.backlog == 4 and failed.errors == 1
    assert failed.last_error is not None and "Error" in failed.last_error
    assert recovered.shipped == 4 and recovered.backlog == 0
    assert recovered.errors == 1 and recovered.last_error is None
    assert files_under(blocked / "landing") == sealed_files(landing)


def run_once(landing: Path, target: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streaming.landing.shipper", "--once"]
    return subprocess.run(
        [*command, "--source", str(landing), "--target", target],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_once_ships_the_backlog_and_exits(tmp_path):
    landing, target = tmp_path / "landing", tmp_path / "shipped"
    land(landing, 5)

    first = run_once(landing, str(target))
    second = run_once(landing, str(target))
    itself = run_once(landing, str(landing))

    assert first.returncode == 0, first.stderr
    assert ShipperState.from_json(first.stdout.splitlines()[-1]).shipped == 5
    assert files_under(target) == sealed_files(landing)
    last = ShipperState.from_json(second.stdout.splitlines()[-1])
    assert second.returncode == 0 and last.shipped == 5 and last.shipped_bytes == 0
    assert itself.returncode == 0 and "nothing to ship" in itself.stderr


def test_the_sidecar_metrics_show_the_shipper_state_once_it_reports():
    metrics = SidecarMetrics()
    before = metrics.render()[0].decode()

    metrics.shipping.show(ShipperState(7, 2, 4096, 1, "OSError: down"))
    after = metrics.render()[0].decode()

    assert "sidecar_landing_ship" not in before
    assert "sidecar_landing_shipped_segments 7.0" in after
    assert "sidecar_landing_ship_backlog_segments 2.0" in after
    assert "sidecar_landing_shipped_bytes_total 4096.0" in after
    assert "sidecar_landing_ship_errors_total 1.0" in after
    assert "sidecar_landing_ship_failing 1.0" in after


async def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_supervised_shipper_is_restarted_when_killed_and_ships_what_sealed_since(
    tmp_path,
):
    # Arrange: a shipper supervised as the sidecar does it, reporting to its metrics
    landing, target = tmp_path / "landing", tmp_path / "shipped"
    land(landing, 3)
    metrics = SidecarMetrics()
    process = ShipperProcess(
        landing, str(target), interval_s=0.1, restart_delay_s=0.1, on_state=metrics.shipping.show
    )
    task = asyncio.create_task(process.supervise())
    try:
        await wait_for(lambda: process.state.shipped == 3)
        first_pid = process.pid
        assert first_pid is not None

        # Act: kill it, seal more while it is down
        os.kill(first_pid, signal.SIGKILL)
        await wait_for(lambda: process.restarts == 1)
        land(landing, 2)
        await wait_for(lambda: process.state.shipped == 5 and process.state.backlog == 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # Assert: everything arrived once; the kill counts as an error; the child is gone
    assert files_under(target) == sealed_files(landing)
    assert process.pid is None
    assert process.state.errors == 1
    assert "sidecar_landing_shipped_segments 5.0" in metrics.render()[0].decode()
    lines = ledger_path(landing, str(target)).read_text().splitlines()
    assert len(lines) == len(set(lines)) == 5


async def test_draining_ships_what_sealed_after_the_shipper_stopped(tmp_path):
    landing, target = tmp_path / "landing", tmp_path / "shipped"
    land(landing, 2)
    process = ShipperProcess(landing, str(target))

    state = await process.drain(timeout_s=60)

    assert state.shipped == 2 and state.backlog == 0 and state.last_error is None
    assert files_under(target) == sealed_files(landing)
    assert json.loads(state.to_json())["shipped"] == 2
