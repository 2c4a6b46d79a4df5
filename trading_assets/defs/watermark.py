"""The event-time watermark every asset records: the newest market time it holds or derives from.

Lineage in the UI shows where freshness breaks by comparing watermarks along the graph. A
materialization without market data (an empty partition, no matured predictions yet, the Feast
registry's definitions) records ``watermark_note`` saying why instead of a made-up time, so the
key is never silently missing; readers such as the staleness sensor take a missing ``watermark``
as "no market data".
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

WATERMARK = "watermark"
WATERMARK_NOTE = "watermark_note"
_NS = 1_000_000_000


def watermark_metadata(newest: dt.datetime | None, why_none: str) -> dict[str, dg.MetadataValue]:
    """``watermark`` at ``newest``, or ``watermark_note`` with ``why_none`` when there is none."""
    if newest is None:
        return {WATERMARK_NOTE: dg.MetadataValue.text(why_none)}
    return {WATERMARK: dg.MetadataValue.timestamp(newest)}


def watermark_from_ns(newest_ns: int | None, why_none: str) -> dict[str, dg.MetadataValue]:
    """:func:`watermark_metadata` for an integer-nanosecond event time."""
    newest = None if newest_ns is None else dt.datetime.fromtimestamp(newest_ns / _NS, dt.UTC)
    return watermark_metadata(newest, why_none)


def carried_watermark(
    instance: dg.DagsterInstance, upstream: dg.AssetKey
) -> dict[str, dg.MetadataValue]:
    """The watermark (or note) of ``upstream``'s newest materialization, for an asset that points
    at what ``upstream`` produced rather than reading market data itself."""
    event = instance.get_latest_materialization_event(upstream)
    materialization = None if event is None else event.asset_materialization
    if materialization is None:
        return watermark_metadata(None, f"{upstream.to_user_string()} is not materialized")
    metadata = materialization.metadata
    for key in (WATERMARK, WATERMARK_NOTE):
        if key in metadata:
            return {key: metadata[key]}
    return watermark_metadata(None, f"{upstream.to_user_string()} recorded no watermark")
