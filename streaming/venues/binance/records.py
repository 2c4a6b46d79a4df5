"""Binance's own records: those of its messages that no other venue shares (aggregate trades,
klines, exchange info), beside the neutral ones of :mod:`streaming.records` its parser builds.

Timestamps are integer nanoseconds since the Unix epoch; prices and quantities are Binance's
decimal strings, unchanged.
"""

from __future__ import annotations

import msgspec

from streaming.records import BookTicker, DepthSnapshot, DepthUpdate, PriceLevel, Trade


class AggTrade(msgspec.Struct, frozen=True, gc=False):
    """Trades of one taker order at one price (``@aggTrade`` stream, ``/api/v3/aggTrades``)."""

    symbol: str
    agg_id: int
    price: str
    quantity: str
    first_trade_id: int
    last_trade_id: int
    is_buyer_maker: bool
    trade_ns: int
    event_ns: int | None
    receive_ns: int


class Kline(msgspec.Struct, frozen=True, gc=False):
    """One candlestick (``@kline_<interval>`` stream or a ``/api/v3/klines`` row)."""

    symbol: str
    interval: str
    open_ns: int
    close_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trade_count: int
    taker_buy_base_volume: str
    taker_buy_quote_volume: str
    is_closed: bool
    event_ns: int | None
    receive_ns: int
    first_trade_id: int | None = None
    last_trade_id: int | None = None


class SymbolInfo(msgspec.Struct, frozen=True, gc=False):
    """Trading rules of one symbol from ``/api/v3/exchangeInfo``."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    tick_size: str | None
    step_size: str | None


class ExchangeInfo(msgspec.Struct, frozen=True, gc=False):
    """The parts of ``/api/v3/exchangeInfo`` we use."""

    server_ns: int
    symbols: tuple[SymbolInfo, ...]
    receive_ns: int


BinanceRecord = Trade | AggTrade | BookTicker | DepthUpdate | Kline

__all__ = [
    "AggTrade",
    "BinanceRecord",
    "BookTicker",
    "DepthSnapshot",
    "DepthUpdate",
    "ExchangeInfo",
    "Kline",
    "PriceLevel",
    "SymbolInfo",
    "Trade",
]
