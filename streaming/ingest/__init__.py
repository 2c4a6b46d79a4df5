"""The sidecar's market-data ingest: a resilient Binance stream with gap-filled, contiguous trades.

No dagster here: the sidecar runs on its own. :class:`MarketFeed` is the entry point; the
other names are its parts, public for tests, metrics and tools.
"""

from streaming.ingest.backoff import Backoff
from streaming.ingest.connection import HandshakeRejected, combined_stream_url, open_stream
from streaming.ingest.deadletter import DeadLetter, DeadLetterWriter, read_dead_letters
from streaming.ingest.feed import DEFAULT_CHANNELS, MarketFeed
from streaming.ingest.gapfill import fetch_trades
from streaming.ingest.sequencer import TradeSequencer
from streaming.ingest.stats import FeedStats, UnfilledGap

__all__ = [
    "DEFAULT_CHANNELS",
    "Backoff",
    "DeadLetter",
    "DeadLetterWriter",
    "FeedStats",
    "HandshakeRejected",
    "MarketFeed",
    "TradeSequencer",
    "UnfilledGap",
    "combined_stream_url",
    "fetch_trades",
    "open_stream",
    "read_dead_letters",
]
