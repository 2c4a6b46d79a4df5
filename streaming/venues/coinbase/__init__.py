"""Coinbase Advanced Trade spot: wire types, the frame parser and the L2 book keeper."""

from streaming.venues.coinbase.book import BookNotReadyError, Books, OrderBook
from streaming.venues.coinbase.parse import CoinbaseFrameParser, CoinbaseParseError, parse_frames
from streaming.venues.coinbase.wire import rfc3339_ns

__all__ = [
    "BookNotReadyError",
    "Books",
    "CoinbaseFrameParser",
    "CoinbaseParseError",
    "OrderBook",
    "parse_frames",
    "rfc3339_ns",
]
