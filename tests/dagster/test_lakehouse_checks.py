"""Each lakehouse check fails on data that really has its defect; blocking ones stop the bars."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse import checks
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
from trading_assets.lib.lakehouse.bulk import publish_to_mirror
from trading_assets.lib.lakehouse.pipeline import read_silver, to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import SILVER_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import replace_partition
from trading_assets.resources import BinanceBulkResource, IcebergCatalogResource

DAY = dt.date(2024, 3, 1)
DAY_MS = 1_709_251_200_000
INSTRUMENT = "BINANCE:BTCUSDT"
KEY = f"{DAY.isoformat()}|{INSTRUMENT}"
ASSETS = [raw_trades, bronze_trades, silver_trades, bars_1s, bars_1m]
CHECKS = [
    checks.rows_reconcile,
    checks.no_duplicate_trade_ids,
    checks.time_never_goes_backwards,
    checks.trade_id_gaps,
    checks.no_price_spikes,
]


def csv_line(trade_id: int, price: str, offset_ms: int) -> str:
    return f"{trade_id},{price},0.01000000,1.00000000,{DAY_MS + offset_ms},False,True"


def publish(root: Path, lines: list[str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-trades-2024-03-01.csv", "\n".join(lines) + "\n")
    publish_to_mirror(root, "BTCUSDT", DAY, buffer.getvalue())
    return root.as_uri()


def clean_lines(count: int = 300) -> list[str]:
    return [csv_line(i, f"{100 + (i % 5) / 100:.8f}", i * 1000) for i in range(1, count + 1)]


def resources(tmp_path: Path, mirror: str) -> dict[str, object]:
    return {
        "iceberg": IcebergCatalogResource.local(tmp_path / "lake"),
        "binance_bulk": BinanceBulkResource(base_url=mirror),
    }


def run(tmp_path: Path, mirror: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        partition_key=KEY,
        resources=resources(tmp_path, mirror),
        raise_on_error=False,
    )


def outcomes(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, dg.AssetCheckSeverity]]:
    return {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        event.asset_key.to_user_string()
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        and event.asset_key is not None
    }


def test_clean_day_passes_every_check(tmp_path):
    result = run(tmp_path, publish(tmp_path / "mirror", clean_lines()))

    assert result.success
    assert all(passed for passed, _ in outcomes(result).values())
    assert materialized(result) == {asset.key.to_user_string() for asset in ASSETS}


def test_time_going_backwards_blocks_the_bars_while_gaps_and_spikes_only_warn(tmp_path):
    lines = clean_lines()
    lines[150] = csv_line(151, "100.01000000", 149_000)  # earlier than trade 150
    lines[100] = csv_line(101, "130.00000000", 101_000)  # a bad print
    del lines[200:203]  # ids 201..203 never arrive
    mirror = publish(tmp_path / "mirror", lines)

    result = run(tmp_path, mirror)

    found = outcomes(result)
    assert found["time_never_goes_backwards"] == (False, dg.AssetCheckSeverity.ERROR)
    assert found["trade_id_gaps"] == (False, dg.AssetCheckSeverity.WARN)
    assert found["no_price_spikes"] == (False, dg.AssetCheckSeverity.WARN)
    assert found["rows_reconcile"][0] and found["no_duplicate_trade_ids"][0]
    assert materialized(result) == {"raw_trades", "bronze_trades", "silver_trades"}
    gaps = next(e for e in result.get_asset_check_evaluations() if e.check_name == "trade_id_gaps")
    assert gaps.metadata["missing_ids"].value == 3
    assert gaps.metadata["gap_ranges"].value == [[201, 203]]


def test_duplicates_slipped_into_silver_fail_both_duplicate_and_reconciliation_checks(tmp_path):
    mirror = publish(tmp_path / "mirror", clean_lines())
    assert run(tmp_path, mirror).success
    lake = IcebergCatalogResource.local(tmp_path / "lake").lakehouse()
    silver = read_silver(lake, INSTRUMENT, DAY)
    table = lake.table(SILVER_TRADES_TABLE)
    corrupted = pl.concat([silver, silver.head(2)])
    replace_partition(table, DAY, INSTRUMENT, [to_iceberg_arrow(corrupted, table.schema())])

    duplicates = checks.evaluate_no_duplicates(lake, DAY, INSTRUMENT)
    reconcile = checks.evaluate_rows_reconcile(lake, DAY, INSTRUMENT)

    assert (duplicates.passed, duplicates.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert duplicates.metadata["extra_copies"].value == 2
    assert (reconcile.passed, reconcile.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert reconcile.metadata["raw_rows"].value == 300
    assert reconcile.metadata["silver_rows"].value == 302


@pytest.mark.parametrize("dropped", [1, 25])
def test_rows_lost_between_layers_fail_reconciliation(tmp_path, dropped):
    mirror = publish(tmp_path / "mirror", clean_lines())
    assert run(tmp_path, mirror).success
    lake = IcebergCatalogResource.local(tmp_path / "lake").lakehouse()
    table = lake.table(SILVER_TRADES_TABLE)
    shorter = read_silver(lake, INSTRUMENT, DAY).slice(dropped)
    replace_partition(table, DAY, INSTRUMENT, [to_iceberg_arrow(shorter, table.schema())])

    result = checks.evaluate_rows_reconcile(lake, DAY, INSTRUMENT)

    assert not result.passed
    assert result.metadata["silver_rows"].value == 300 - dropped
