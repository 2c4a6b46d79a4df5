"""Binance spot protocol layer: wire types, domain records, parse functions and the L2 book."""

from streaming.venues.binance.book import OrderBook, OrderBookGapError
from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.parse import (
    parse_agg_trade,
    parse_book_ticker,
    parse_depth_update,
    parse_exchange_info,
    parse_kline,
    parse_rest_agg_trades,
    parse_rest_depth,
    parse_rest_klines,
    parse_rest_trades,
    parse_stream_frame,
    parse_stream_payload,
    parse_trade,
)
from streaming.venues.binance.records import (
    AggTrade,
    BinanceRecord,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    ExchangeInfo,
    Kline,
    SymbolInfo,
    Trade,
)

__all__ = [
    "AggTrade",
    "BinanceParseError",
    "BinanceRecord",
    "BookTicker",
    "DepthSnapshot",
    "DepthUpdate",
    "ExchangeInfo",
    "Kline",
    "OrderBook",
    "OrderBookGapError",
    "SymbolInfo",
    "Trade",
    "parse_agg_trade",
    "parse_book_ticker",
    "parse_depth_update",
    "parse_exchange_info",
    "parse_kline",
    "parse_rest_agg_trades",
    "parse_rest_depth",
    "parse_rest_klines",
    "parse_rest_trades",
    "parse_stream_frame",
    "parse_stream_payload",
    "parse_trade",
]
