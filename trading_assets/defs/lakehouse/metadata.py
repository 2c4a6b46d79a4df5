"""Materialization metadata shared by the lakehouse assets."""

from __future__ import annotations

from typing import Any

import dagster as dg

from trading_assets.lib.lakehouse.pipeline import PartitionWrite


def partition_write_metadata(write: PartitionWrite, prefix: str = "") -> dict[str, Any]:
    """Row count, stored bytes/files and the event-time range (watermark) of one partition."""
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
    return metadata
