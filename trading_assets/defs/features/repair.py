"""The repair job the staleness sensor launches: rebuild a day × symbol from silver and serve it.

One run per stale symbol, on today's live partition: ``bars_1s`` and ``features`` are recomputed
from whatever silver holds (the landed live trades), then ``online_features`` materializes each
symbol's newest gold row into the online store. bars_1m and the training frames are left to
automation: they do not feed serving.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from trading_assets.defs.features.assets import features, online_features
from trading_assets.defs.ingest.partitions import DATE_DIMENSION, SYMBOL_DIMENSION, trade_partitions
from trading_assets.defs.lakehouse.assets import bars_1s

REPAIR_JOB_NAME = "staleness_repair"
REPAIR_ASSETS = (bars_1s, features, online_features)

staleness_repair = dg.define_asset_job(
    REPAIR_JOB_NAME,
    selection=dg.AssetSelection.assets(*REPAIR_ASSETS),
    # The sensor does not ask again within its cooldown, so a transient Iceberg or store error is
    # retried here.
    op_retry_policy=dg.RetryPolicy(max_retries=1, delay=10),
    tags={"trading/purpose": "staleness_repair"},
    description=(
        "silver → bars_1s → features for one day × symbol, then online_features: what the "
        "staleness sensor runs when the online store or the sidecar goes stale."
    ),
)


def repair_partition_key(day: dt.date, symbol: str) -> dg.MultiPartitionKey:
    """The partition a repair of ``symbol`` on ``day`` rebuilds."""
    return dg.MultiPartitionKey({DATE_DIMENSION: day.isoformat(), SYMBOL_DIMENSION: symbol})


def repairable_symbols() -> list[str]:
    """The symbols the partitions offer (and so the only ones a repair can rebuild)."""
    symbols = trade_partitions.get_partitions_def_for_dimension(SYMBOL_DIMENSION)
    return list(symbols.get_partition_keys())
