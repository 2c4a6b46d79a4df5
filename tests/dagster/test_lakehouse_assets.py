"""One day × instrument through the whole lakehouse with real Dagster, Iceberg and the simulator."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse import checks
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
from trading_assets.lib.lakehouse.bulk import publish_to_mirror
from trading_assets.lib.lakehouse.schemas import SILVER_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import count_partition
from trading_assets.resources import BinanceBulkResource, IcebergCatalogResource

from .watermarks import LAKEHOUSE_TEST, assets_of, expected_states, watermark_states

TRADES_PER_DAY = 5_000
SEED = 7
DAY = dt.date(2024, 3, 1)
ALL_CHECKS = [
    checks.rows_reconcile,
    checks.no_duplicate_trade_ids,
    checks.time_never_goes_backwards,
    checks.trade_id_gaps,
    checks.no_price_spikes,
]
ALL_ASSETS = [raw_trades, bronze_trades, silver_trades, bars_1s, bars_1m]


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with run_simulator_in_thread(
        symbols=["BTCUSDT", "ETHUSDT"], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
    ) as sim:
        yield sim.http_url


def lakehouse_resources(root: Path, bulk_url: str) -> dict[str, object]:
    return {
        "iceberg": IcebergCatalogResource.local(root),
        "binance_bulk": BinanceBulkResource(base_url=bulk_url),
    }


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    (event,) = result.asset_materializations_for_node(asset)
    return event


def test_one_partition_end_to_end_with_metadata_and_passing_checks(tmp_path, simulator):
    expected_trades = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY).day_trades(
        "BTCUSDT", DAY
    )

    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        partition_key=f"{DAY.isoformat()}|BINANCE:BTCUSDT",
        resources=lakehouse_resources(tmp_path, simulator),
        instance=instance,
    )

    assert result.success
    raw = materialization(result, "raw_trades").metadata
    assert int(str(raw["size_bytes"].value)) > 0
    assert len(str(raw["sha256"].value)) == 64
    bronze = materialization(result, "bronze_trades").metadata
    silver = materialization(result, "silver_trades").metadata
    # The zip's newest trade, as published, is raw's watermark and bronze's (strings as received).
    assert raw["watermark"].value == pytest.approx(expected_trades["time"].max() / 1000)  # type: ignore[operator]
    assert bronze["watermark"].value == raw["watermark"].value
    assert watermark_states(instance) == expected_states(assets_of(LAKEHOUSE_TEST))
    assert bronze["rows"].value == expected_trades.height
    assert silver["rows"].value == expected_trades.height
    assert silver["quarantine_rows"].value == 0
    first_ms = expected_trades["time"].min()
    last_ms = expected_trades["time"].max()
    assert silver["first_event_time"].value == pytest.approx(first_ms / 1000)  # type: ignore[operator]
    assert silver["watermark"].value == pytest.approx(last_ms / 1000)  # type: ignore[operator]
    bars = materialization(result, "bars_1m").metadata
    assert str(bars["chart"].value).startswith("![")
    assert "data:image/png;base64," in str(bars["chart"].value)
    seconds = materialization(result, "bars_1s").metadata
    assert 0 < seconds["rows"].value <= expected_trades.height  # type: ignore[operator]
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {c.check_key.name for c in ALL_CHECKS}
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]


def test_rematerializing_a_partition_keeps_one_copy_of_each_row(tmp_path, simulator):
    resources = lakehouse_resources(tmp_path, simulator)
    key = f"{DAY.isoformat()}|BINANCE:ETHUSDT"
    expected = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY).trade_count("ETHUSDT", DAY)

    first = dg.materialize(ALL_ASSETS[:3], partition_key=key, resources=resources)
    second = dg.materialize(ALL_ASSETS[:3], partition_key=key, resources=resources)

    assert first.success and second.success
    lake = IcebergCatalogResource.local(tmp_path).lakehouse()
    assert count_partition(lake.table(SILVER_TRADES_TABLE), DAY, "BINANCE:ETHUSDT") == expected
    assert materialization(second, "raw_trades").metadata["downloaded"].value is False


def test_a_day_without_trades_says_why_it_has_no_watermark(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"BTCUSDT-trades-{DAY.isoformat()}.csv", "")
    # The venue marks the day empty; an unmarked empty file is refused (test_bulk_faults).
    publish_to_mirror(tmp_path / "mirror", "BTCUSDT", DAY, buffer.getvalue(), marked_empty=True)
    resources = lakehouse_resources(tmp_path / "lake", (tmp_path / "mirror").as_uri())

    result = dg.materialize(
        ALL_ASSETS[:3], partition_key=f"{DAY.isoformat()}|BINANCE:BTCUSDT", resources=resources
    )

    assert result.success
    notes = {}
    for asset in ("raw_trades", "bronze_trades", "silver_trades"):
        metadata = materialization(result, asset).metadata
        assert "watermark" not in metadata, asset
        notes[asset] = str(metadata["watermark_note"].value)
    assert notes["raw_trades"] == f"BTCUSDT-trades-{DAY.isoformat()}.zip holds no trade time"
    assert notes["silver_trades"] == "no event time in silver.trades for this partition (0 rows)"
