"""A partitioned job over the whole lakehouse, so a day × symbol range can be backfilled from the
CLI (``dagster job backfill``) as well as from the UI's asset backfill."""

import dagster as dg

from trading_assets.defs.ingest.partitions import trade_partitions
from trading_assets.defs.ingest.raw_trades import raw_trades

lakehouse_daily = dg.define_asset_job(
    "lakehouse_daily",
    selection=dg.AssetSelection.assets(raw_trades).downstream(),
    partitions_def=trade_partitions,
    description="raw → bronze → silver (+ quarantine) → bars_1s → bars_1m for one day × symbol.",
)
