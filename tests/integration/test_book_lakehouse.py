"""Landed L2 books through bronze and silver on a real Iceberg catalog: the recorded Binance
session's lines, landed by the sidecar's book capture, are held whole in bronze, typed in silver
(integer units, repeated lines dropped), and silver rebuilds to every snapshot; a damaged day is
caught by the checks, and a day without captured book data is an empty partition."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import msgspec
import pytest

from streaming.landing import BOOK_SNAPSHOTS_KIND, BOOK_UPDATES_KIND
from tests.book_landing import land_recorded_book
from trading_assets.lib.book.lakehouse import (
    check_silver_book,
    load_bronze_book,
    read_silver_book,
    refine_silver_book,
)
from trading_assets.lib.book.landed import read_landed_book
from trading_assets.lib.book.rebuild import levels_of
from trading_assets.lib.lakehouse.landing_layout import list_segments
from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.lib.lakehouse.tables import open_catalog

pytestmark = pytest.mark.backtest
INSTRUMENT = "BINANCE:BTCUSDT"


@pytest.fixture(scope="module")
def landed_root(tmp_path_factory, shared_data) -> Path:
    """The BTCUSDT session's book, landed by the capture with a snapshot every 5 s."""
    root = tmp_path_factory.mktemp("landing")
    land_recorded_book(root, shared_data, "BTCUSDT", 5.0)
    return root


def lakehouse(root: Path) -> Lakehouse:
    (root / "warehouse").mkdir(parents=True)
    catalog = open_catalog("test", {"type": "sql", "uri": f"sqlite:///{root}/catalog.db",
                                    "warehouse": (root / "warehouse").as_uri()})  # fmt: skip
    return Lakehouse(catalog, f"{(root / 'warehouse').as_uri()}/raw")


def days_of(root: Path) -> list[dt.date]:
    return sorted({s.day for s in list_segments(root, BOOK_SNAPSHOTS_KIND)})


def test_bronze_holds_every_landed_line_and_silver_rebuilds_exactly(tmp_path, landed_root):
    lake = lakehouse(tmp_path)
    for day in days_of(landed_root):
        # Act
        bronze = load_bronze_book(lake, INSTRUMENT, day, landed_root)
        silver = refine_silver_book(lake, INSTRUMENT, day)
        report = check_silver_book(lake, INSTRUMENT, day)

        # Assert: bronze holds every landed line; silver the same lines in integer units
        diffs, snapshots = read_landed_book(landed_root, INSTRUMENT, day)
        assert (bronze.updates.rows, bronze.snapshots.rows) == (len(diffs), len(snapshots))
        assert (silver.updates.rows, silver.snapshots.rows, silver.repeated_lines) == (
            len(diffs), len(snapshots), 0)  # fmt: skip
        silver_diffs, silver_snapshots = read_silver_book(lake, INSTRUMENT, day)
        assert silver_diffs == [levels_of(d) for d in diffs]
        assert sorted(silver_snapshots) == sorted(levels_of(s) for s in snapshots)
        # ... which rebuild to every snapshot, never crossed, with nothing broken
        assert report.ok, (report.breaks[:3], report.mismatches[:3], report.crossed_at)
        assert report.snapshots_matched == len(snapshots) - report.segments > 0
        assert report.diffs_applied == len(diffs)
        assert silver.updates.first_event is not None and silver.updates.first_event.date() == day
    # Silver takes far fewer bytes than the landed JSON (columnar, compressed, integers)
    landed_bytes = sum(s.path.stat().st_size for kind in (BOOK_UPDATES_KIND, BOOK_SNAPSHOTS_KIND)
                       for s in list_segments(landed_root, kind))  # fmt: skip
    silver_bytes = sum(
        write.data_bytes
        for day in days_of(landed_root)
        for write in (refine_silver_book(lake, INSTRUMENT, day).updates,)
    )
    assert silver_bytes < landed_bytes / 4


def test_repeated_lines_are_dropped_and_a_lost_diff_breaks_the_segment(tmp_path, landed_root):
    # Arrange: a copy of the landing whose day of diffs is cut in two segments (as rotation
    # cuts them); the first landed twice, the second lost a line in its middle
    root = tmp_path / "landing"
    shutil.copytree(landed_root, root)
    day = days_of(root)[0]
    (segment,) = list_segments(root, BOOK_UPDATES_KIND, instrument=INSTRUMENT, day=day)
    lines = segment.path.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    first, second = lines[:half], lines[half:]
    lost = msgspec.json.decode(second.pop(len(second) // 2))
    segment.path.write_bytes(b"".join(first))
    segment.path.with_name("8" + segment.path.name).write_bytes(b"".join(first))
    segment.path.with_name("9" + segment.path.name).write_bytes(b"".join(second))
    lake = lakehouse(tmp_path / "lake")

    # Act
    load_bronze_book(lake, INSTRUMENT, day, root)
    silver = refine_silver_book(lake, INSTRUMENT, day)
    report = check_silver_book(lake, INSTRUMENT, day)

    # Assert
    assert silver.repeated_lines == len(first)
    (broken,) = report.breaks
    assert broken.last_update_id == lost["first_update_id"] - 1
    assert "does not continue" in broken.what


def test_a_day_without_captured_book_data_is_an_empty_partition(tmp_path, landed_root):
    lake = lakehouse(tmp_path)
    day = days_of(landed_root)[0] - dt.timedelta(days=3)

    bronze = load_bronze_book(lake, INSTRUMENT, day, landed_root)
    silver = refine_silver_book(lake, INSTRUMENT, day)
    report = check_silver_book(lake, INSTRUMENT, day)

    assert (bronze.updates.rows, bronze.snapshots.rows, bronze.landed_segments) == (0, 0, 0)
    assert (silver.updates.rows, silver.snapshots.rows) == (0, 0)
    assert report.ok and report.segments == 0
