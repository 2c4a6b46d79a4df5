"""The sidecar's market-data ingest: a resilient stream from any venue, with gap-filled trades.

No dagster here: the sidecar runs on its own. :class:`MarketFeed` is the entry point; the
other names are its parts, public for tests, metrics and tools.
"""

from streaming.ingest.backoff import Backoff
from streaming.ingest.connection import HandshakeRejected, open_stream
from streaming.ingest.deadletter import DeadLetter, DeadLetterWriter, read_dead_letters
from streaming.ingest.feed import MarketFeed
from streaming.ingest.gapfill import MissingTradesError, trade_chunks
from streaming.ingest.sequencer import TradeSequencer
from streaming.ingest.stats import FeedStats, UnfilledGap

__all__ = [
    "Backoff",
    "DeadLetter",
    "DeadLetterWriter",
    "FeedStats",
    "HandshakeRejected",
    "MarketFeed",
    "MissingTradesError",
    "TradeSequencer",
    "UnfilledGap",
    "open_stream",
    "read_dead_letters",
    "trade_chunks",
]
