"""The sidecar's side of the Feast online store: a micro-batching pusher and a reader of each
symbol's newest vector."""

from streaming.online.reader import OnlineFeatureReader
from streaming.online.store import open_feature_store
from streaming.online.writer import OnlineFeatureWriter, OnlineWriterStats, push_sources

__all__ = [
    "OnlineFeatureReader",
    "OnlineFeatureWriter",
    "OnlineWriterStats",
    "open_feature_store",
    "push_sources",
]
