"""The sidecar's side of the Feast online store: a micro-batching pusher and a reader of each
symbol's newest vector."""

from streaming.online.reader import OnlineFeatureReader
from streaming.online.writer import OnlineFeatureWriter, OnlineWriterStats, push_sources

__all__ = ["OnlineFeatureReader", "OnlineFeatureWriter", "OnlineWriterStats", "push_sources"]
