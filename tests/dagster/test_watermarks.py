"""Every asset records its event-time watermark, or says why it has none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from trading_assets.defs.lakehouse.metadata import partition_write_metadata
from trading_assets.defs.watermark import carried_watermark, watermark_from_ns, watermark_metadata
from trading_assets.lib.lakehouse.pipeline import PartitionWrite

from .watermarks import WATERMARK_TESTS, code_location_assets

NEWEST = dt.datetime(2024, 3, 1, 23, 59, 59, 500_000, tzinfo=dt.UTC)


def test_every_asset_has_a_watermark_test():
    names = {key.to_user_string() for key in code_location_assets()}
    test_modules = {path.stem for path in Path(__file__).parent.glob("test_*.py")}

    assert names == set(WATERMARK_TESTS)
    assert set(WATERMARK_TESTS.values()) <= test_modules


def test_a_watermark_or_a_note_never_both():
    assert watermark_metadata(NEWEST, "unused") == {"watermark": dg.MetadataValue.timestamp(NEWEST)}
    assert watermark_from_ns(int(NEWEST.timestamp() * 1e9), "unused") == {
        "watermark": dg.MetadataValue.timestamp(NEWEST)
    }
    assert watermark_from_ns(None, "nothing matured") == {
        "watermark_note": dg.MetadataValue.text("nothing matured")
    }


def test_an_empty_partition_says_so_and_an_empty_quarantine_stays_quiet():
    empty = PartitionWrite(table="silver.trades", rows=0, data_bytes=0, data_files=0)

    main = partition_write_metadata(empty)
    quarantine = partition_write_metadata(empty, prefix="quarantine_")

    assert "watermark" not in main
    assert (
        main["watermark_note"].value == "no event time in silver.trades for this partition (0 rows)"
    )
    assert not {"quarantine_watermark", "watermark_note"} & set(quarantine)


def test_an_asset_pointing_at_an_upstream_result_carries_its_watermark():
    instance = dg.DagsterInstance.ephemeral()
    upstream = dg.AssetKey("registered_model")
    missing = carried_watermark(instance, upstream)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(upstream, metadata=watermark_metadata(NEWEST, "unused"))
    )

    carried = carried_watermark(instance, upstream)

    assert missing == {
        "watermark_note": dg.MetadataValue.text("registered_model is not materialized")
    }
    assert carried == {"watermark": dg.MetadataValue.timestamp(NEWEST)}
