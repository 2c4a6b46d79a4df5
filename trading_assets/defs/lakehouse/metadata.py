"""Materialization metadata shared by the lakehouse assets."""

from __future__ import annotations

from typing import Any

import dagster as dg

from trading_assets.defs.watermark import watermark_metadata
from trading_assets.lib.lakehouse.pipeline import PartitionWrite


def partition_write_metadata(write: PartitionWrite, prefix: str = "") -> dict[str, Any]:
    """Row count, stored bytes/files and the event-time range (watermark) of one partition.

    An empty main partition says so in ``watermark_note``; an empty quarantine needs no note.
    """
    metadata: dict[str, Any] = {
        f"{prefix}table": write.table,
        f"{prefix}rows": dg.MetadataValue.int(write.rows),
        f"{prefix}data_bytes": dg.MetadataValue.int(write.data_bytes),
        f"{prefix}data_files": dg.MetadataValue.int(write.data_files),
    }
    if not prefix:
        metadata["dagster/row_count"] = dg.MetadataValue.int(write.rows)
    if write.first_event is not None and write.last_event is not None:
        metadata[f"{prefix}first_event_time"] = dg.MetadataValue.timestamp(write.first_event)
        metadata[f"{prefix}watermark"] = dg.MetadataValue.timestamp(write.last_event)
    elif not prefix:
        why = f"no event time in {write.table} for this partition ({write.rows} rows)"
        metadata.update(watermark_metadata(None, why))
    return metadata
