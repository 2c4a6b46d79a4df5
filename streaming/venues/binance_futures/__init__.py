"""Binance USD-M futures (perpetuals): wire types, the frame parser and the venue."""

from streaming.venues.binance_futures.parse import (
    BinanceFuturesFrameParser,
    BinanceFuturesParseError,
    parse_rest_trades,
)
from streaming.venues.binance_futures.venue import VENUE, BinanceUsdmFutures, split_by_route

__all__ = [
    "VENUE",
    "BinanceFuturesFrameParser",
    "BinanceFuturesParseError",
    "BinanceUsdmFutures",
    "parse_rest_trades",
    "split_by_route",
]
