"""Load the newest offline features into the online store (Feast materialize).

The window is anchored on the exported events, not on the wall clock: backfilled history (or a
simulator day) materializes the same way as today's data. Each symbol gets its newest exported
row: the window runs from the TTL before the oldest of the symbols' newest events to the newest
event overall. A symbol whose data ended more than ``MAX_LAG`` before the newest event keeps
whatever the store held (the live sidecar's pushes, or nothing), so one delisted symbol cannot
stretch the window over months.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.features import CROSS

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class MaterializeResult:
    """The materialized views and window, the newest exported event, and the symbols served."""

    views: list[str]
    start: dt.datetime
    end: dt.datetime
    newest: dt.datetime
    symbols_served: list[str]


def batch_views(cross_dir: str | None = None) -> list[str]:
    """Views fed by the gold exports: the trade groups, and cross when ``cross_dir`` holds
    exported cross features (none without TRADING_CROSS_PAIRS); book is live-only."""
    cross = cross_dir is not None and bool(offline.list_partitions(cross_dir))
    return [*spec.TRADE_GROUPS, *([CROSS] if cross else [])]


MAX_LAG = dt.timedelta(days=1)


def materialize_newest(
    store: FeatureStore, offline_dir: str, cross_dir: str | None = None
) -> MaterializeResult:
    """Materialize the batch views so that every recent symbol's newest exported row is served
    (the cross view too when ``cross_dir`` holds an export)."""
    newest_by_symbol = offline.newest_event_times(offline_dir)
    if not newest_by_symbol:
        raise ValueError(f"no exported gold features under {offline_dir}: materialize `features`")
    newest = max(newest_by_symbol.values())
    recent = [t for t in newest_by_symbol.values() if t >= newest - MAX_LAG]
    start = min(recent) - spec.view_ttl()
    # Feast's file store treats the end as inclusive; one extra microsecond costs nothing.
    end = newest + dt.timedelta(microseconds=1)
    views = batch_views(cross_dir)
    store.materialize(start_date=start, end_date=end, feature_views=views)
    symbols = sorted(
        {offline.parse_partition_name(f)[1] for f in offline.list_partitions(offline_dir)}
    )
    return MaterializeResult(views, start, end, newest, served_symbols(store, symbols))


def served_symbols(store: FeatureStore, symbols: list[str]) -> list[str]:
    """Symbols whose online price row exists (a read back through Feast's own API)."""
    if not symbols:
        return []
    probe = spec.group_features(spec.TRADE_GROUPS[0])[0]
    response = store.get_online_features(
        features=[f"{spec.TRADE_GROUPS[0]}:{probe}"],
        entity_rows=[{spec.ENTITY: s} for s in symbols],
    ).to_dict()
    statuses = zip(response[spec.ENTITY], response[probe], strict=True)
    return [symbol for symbol, value in statuses if value is not None]
