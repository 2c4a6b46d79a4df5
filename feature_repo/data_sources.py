"""Data sources: the gold feature export (offline) and one push source per live feature view.

Why a parquet export and not the Iceberg table: Feast has no Iceberg source for the local file
offline store, and the table's data folder also holds files that replaced partitions left behind
(they stay until snapshots expire), so reading that folder would count rows twice. The
``features`` asset therefore writes each committed gold partition as one parquet file
(``<offline root>/features/<day>_<instrument>.parquet``, the instrument as a path name),
replaced atomically (written under a hidden name, then renamed), which is exactly the current
table content.

Relative paths resolve against the store's data root (Feast's repo_path); production sets
``FEAST_OFFLINE_ROOT`` to an object-store URI (``s3://…``). A source's path ends in its export's
folder; applying the repository (``trading_assets.lib.feature_store.repo.localize_sources``)
registers that folder under the offline root of the applying process's settings.
"""

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from trading_assets.lib.feature_store.paths import (
    BOOK_FEATURES_FOLDER,
    CROSS_FEATURES_FOLDER,
    DEPTH_FEATURES_FOLDER,
    GOLD_FEATURES_FOLDER,
    offline_root,
)
from trading_assets.lib.feature_store.spec import TIMESTAMP_FIELD

gold_features_source = FileSource(
    name="gold_features_source",
    path=f"{offline_root()}/{GOLD_FEATURES_FOLDER}",
    file_format=ParquetFormat(),
    timestamp_field=TIMESTAMP_FIELD,
    description="gold.features exported per day × instrument (price and flow groups).",
)

book_features_source = FileSource(
    name="book_features_source",
    path=f"{offline_root()}/{BOOK_FEATURES_FOLDER}",
    file_format=ParquetFormat(),
    timestamp_field=TIMESTAMP_FIELD,
    description="Book features logged by the sidecar (bulk history has no bookTicker data).",
)

cross_features_source = FileSource(
    name="cross_features_source",
    path=f"{offline_root()}/{CROSS_FEATURES_FOLDER}",
    file_format=ParquetFormat(),
    timestamp_field=TIMESTAMP_FIELD,
    description="gold.cross_features exported per day × own instrument (TRADING_CROSS_PAIRS).",
)

depth_features_source = FileSource(
    name="depth_features_source",
    path=f"{offline_root()}/{DEPTH_FEATURES_FOLDER}",
    file_format=ParquetFormat(),
    timestamp_field=TIMESTAMP_FIELD,
    description="gold.depth_features exported per day × instrument (captured L2 books).",
)

price_push_source = PushSource(
    name="price_push_source",
    batch_source=gold_features_source,
    description="Live price features pushed by the streaming sidecar.",
)

flow_push_source = PushSource(
    name="flow_push_source",
    batch_source=gold_features_source,
    description="Live trade-flow features pushed by the streaming sidecar.",
)

book_push_source = PushSource(
    name="book_push_source",
    batch_source=book_features_source,
    description="Live top-of-book features pushed by the streaming sidecar.",
)

depth_push_source = PushSource(
    name="depth_push_source",
    batch_source=depth_features_source,
    description="Live L2 depth features pushed by the streaming sidecar.",
)

cross_push_source = PushSource(
    name="cross_push_source",
    batch_source=cross_features_source,
    description="Live cross-venue features pushed by the streaming sidecar.",
)
