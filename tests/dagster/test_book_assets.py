"""The captured L2 books in Dagster: the book pickup sensor requests each day × instrument with a
new sealed book segment once, bronze_book and silver_book materialize it, and silver_book's three
checks pass on the recorded Binance session and fail on a landing that lost a diff."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from streaming.landing import BOOK_UPDATES_KIND
from tests.book_landing import land_recorded_book
from trading_assets.defs.book.assets import (
    CROSSED_CHECK,
    SEQUENCE_CHECK,
    SNAPSHOTS_CHECK,
    bronze_book,
    depth_features,
    silver_book,
)
from trading_assets.defs.book.pickup import live_book_landing
from trading_assets.lib.book.landed import read_landed_book
from trading_assets.lib.book.rebuild import levels_of
from trading_assets.lib.feature_store import offline
from trading_assets.lib.features.depth import depth_rows
from trading_assets.lib.lakehouse.landing_layout import list_segments
from trading_assets.resources import FeastResource, IcebergCatalogResource
from trading_assets.resources.landing import LandingResource

pytestmark = pytest.mark.backtest
INSTRUMENT = "BINANCE:ETHUSDT"


def tick(instance: dg.DagsterInstance, root: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing": LandingResource(root=str(root))}
    )
    result = live_book_landing(context)
    assert isinstance(result, dg.SensorResult)
    return result


def materialize(request: dg.RunRequest, root: Path, lake: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [bronze_book, silver_book, depth_features],
        partition_key=request.partition_key,
        tags=request.tags,
        resources={
            "iceberg": IcebergCatalogResource.local(lake),
            "landing": LandingResource(root=str(root)),
            "feast": FeastResource.local(lake / "feast"),
        },
        raise_on_error=False,
    )


def verdicts(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_the_sensor_requests_each_captured_day_once_and_the_checks_pass(tmp_path, shared_data):
    # Arrange
    root = tmp_path / "landing"
    land_recorded_book(root, shared_data, "ETHUSDT", 5.0)
    instance = dg.DagsterInstance.ephemeral()

    # Act: two sensor ticks, then the requested runs
    first = tick(instance, root, None)
    second = tick(instance, root, first.cursor)
    results = [materialize(r, root, tmp_path / "lake") for r in first.run_requests or []]

    # Assert: one run per captured day (the session crosses midnight), none asked twice
    keys = [str(r.partition_key) for r in first.run_requests or []]
    assert keys == [f"2024-08-08|{INSTRUMENT}", f"2024-08-09|{INSTRUMENT}"]
    assert all(r.tags["trading/pickup"] == "book" for r in first.run_requests or [])
    assert not second.run_requests and json.loads(second.cursor or "{}").keys() == set(keys)
    for request, result in zip(first.run_requests or [], results, strict=True):
        assert result.success
        assert verdicts(result) == {SEQUENCE_CHECK: True, CROSSED_CHECK: True,
                                    SNAPSHOTS_CHECK: True}  # fmt: skip
        (silver,) = result.asset_materializations_for_node(silver_book.op.name)
        (bronze,) = result.asset_materializations_for_node(bronze_book.op.name)
        assert silver.metadata["dagster/row_count"].value > 100
        assert bronze.metadata["dagster/row_count"] == silver.metadata["dagster/row_count"]
        # Each records the watermark of what it holds (the newest receive time)
        day = str(request.partition_key).split("|")[0]
        (depth,) = result.asset_materializations_for_node(depth_features.op.name)
        for materialization in (bronze, silver, depth):
            newest = materialization.metadata["watermark"].value
            assert dt.datetime.fromtimestamp(newest, dt.UTC).date().isoformat() == day
        # depth_features: the rows the live class gives on the landed lines, exported for Feast
        diffs, snapshots = read_landed_book(root, INSTRUMENT, dt.date.fromisoformat(day))
        live = depth_rows(INSTRUMENT, [levels_of(d) for d in diffs],
                          [levels_of(s) for s in snapshots])  # fmt: skip
        exported = offline.read_frame(depth.metadata["offline_export"].value)
        assert exported.height == len(live) == depth.metadata["covered_seconds"].value
        assert exported["ofi_10s"].to_list() == [row.values["ofi_10s"] for row in live]


def test_a_landing_that_lost_a_diff_fails_the_sequence_check(tmp_path, shared_data):
    # Arrange: the first day's diffs lose one line in the middle
    root = tmp_path / "landing"
    land_recorded_book(root, shared_data, "ETHUSDT", 5.0)
    segment = list_segments(root, BOOK_UPDATES_KIND, instrument=INSTRUMENT)[0]
    lines = segment.path.read_bytes().splitlines(keepends=True)
    del lines[len(lines) // 2]
    segment.path.write_bytes(b"".join(lines))
    request = (tick(dg.DagsterInstance.ephemeral(), root, None).run_requests or [])[0]

    # Act
    result = materialize(request, root, tmp_path / "lake")

    # Assert: the chain check fails, naming where; the others hold on what was rebuilt
    found = verdicts(result)
    assert found[SEQUENCE_CHECK] is False
    assert found[CROSSED_CHECK] is True
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == SEQUENCE_CHECK
    ]
    assert "does not continue" in json.dumps(evaluation.metadata["examples"].value)
