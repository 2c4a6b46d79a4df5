"""The sidecar's side of the Feast online store: a micro-batching pusher and a reader of each
symbol's newest vector (the reader is lib's, which the staleness sensor reads with too)."""

from streaming.online.bounded import BoundedOnlineReader, OnlineStoreUnavailable
from streaming.online.store import open_feature_store
from streaming.online.writer import OnlineFeatureWriter, OnlineWriterStats, push_sources
from trading_assets.lib.feature_store.online_reader import OnlineFeatureReader

__all__ = [
    "BoundedOnlineReader",
    "OnlineFeatureReader",
    "OnlineFeatureWriter",
    "OnlineStoreUnavailable",
    "OnlineWriterStats",
    "open_feature_store",
    "push_sources",
]
