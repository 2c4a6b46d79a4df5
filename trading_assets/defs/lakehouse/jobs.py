"""A partitioned job over every day × symbol asset, so a range can be backfilled from the CLI
(``dagster job backfill``) as well as from the UI's asset backfill."""

import dagster as dg

from trading_assets.defs.ingest.partitions import trade_partitions

lakehouse_daily = dg.define_asset_job(
    "lakehouse_daily",
    # The lakehouse layers plus the gold features; the unpartitioned Feast assets follow by
    # automation once the partitions land.
    selection=dg.AssetSelection.groups("lakehouse") | dg.AssetSelection.assets("features"),
    partitions_def=trade_partitions,
    description=(
        "raw → bronze → silver (+ quarantine) → bars_1s → bars_1m → features for one day × symbol."
    ),
)
