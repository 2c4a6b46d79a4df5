"""Venue-neutral domain records built from Binance messages.

Timestamps are integer nanoseconds since the Unix epoch. ``event_ns`` is the exchange's own
event time (None when the message carries none, e.g. spot bookTicker or REST rows) and
``receive_ns`` the local receive time. Prices and quantities are Binance's decimal strings,
unchanged, so no float rounding ever happens here; convert with ``decimal.Decimal`` when exact
arithmetic is needed. :class:`Trade` is lib's (:mod:`trading_assets.lib.lakehouse.records`):
it is also the landed record bronze reads back, so it has one definition both sides import.
"""

from __future__ import annotations

import msgspec

from trading_assets.lib.lakehouse.records import Trade

PriceLevel = tuple[str, str]


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


class BookTicker(msgspec.Struct, frozen=True, gc=False):
    """Best bid and ask (``@bookTicker`` stream)."""

    symbol: str
    update_id: int
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    receive_ns: int
    event_ns: int | None = None


class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    """Diff-depth event: levels changed between update ids first..final (quantity 0 = remove)."""

    symbol: str
    first_update_id: int
    final_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    event_ns: int
    receive_ns: int


class DepthSnapshot(msgspec.Struct, frozen=True, gc=False):
    """REST order book snapshot (``/api/v3/depth``), best level first on each side."""

    symbol: str
    last_update_id: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
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
