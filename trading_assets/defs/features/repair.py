"""The repair job the staleness sensor launches: rebuild a day × symbol from silver and serve it.

One run per stale symbol, on today's live partition: ``bars_1s`` and ``features`` are recomputed
from whatever silver holds (the landed live trades), then ``online_features`` materializes each
symbol's newest gold row into the online store. bars_1m and the training frames are left to
automation: they do not feed serving.
"""

from __future__ import annotations

import dagster as dg

from trading_assets.defs.features.assets import features, online_features
from trading_assets.defs.lakehouse.assets import bars_1s
from trading_assets.lib.asset_names import STALENESS_REPAIR_JOB

REPAIR_JOB_NAME = STALENESS_REPAIR_JOB  # the sensor targets the job by this name
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
