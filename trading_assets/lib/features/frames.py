"""Polars frames from stream records, so recorded or live messages can take the batch path too.

Records are duck-typed (:class:`~trading_assets.lib.features.live.TradeLike`,
:class:`~trading_assets.lib.features.live.BookTickerLike`): ``streaming.venues.binance`` records
fit, and ``lib`` stays free of the streaming package.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from trading_assets.lib.features.live import BookTickerLike, TradeLike

_UTC_US = pl.Datetime("us", "UTC")
_DECIMAL = pl.Decimal(18, 8)


def trades_frame(symbol: str, trades: Iterable[TradeLike]) -> pl.DataFrame:
    """Silver-like trades (the columns ``bars_from_trades`` reads), timed by the exchange."""
    rows = [(t.trade_id, t.price, t.quantity, t.trade_ns // 1000, t.is_buyer_maker) for t in trades]
    frame = pl.DataFrame(
        rows,
        schema={
            "trade_id": pl.Int64,
            "price": pl.String,
            "qty": pl.String,
            "time_us": pl.Int64,
            "is_buyer_maker": pl.Boolean,
        },
        orient="row",
    )
    return frame.select(
        trade_date=pl.col("time_us").cast(_UTC_US).dt.date(),
        instrument=pl.lit(symbol, pl.String),
        trade_id="trade_id",
        price=pl.col("price").cast(_DECIMAL),
        qty=pl.col("qty").cast(_DECIMAL),
        event_time=pl.col("time_us").cast(_UTC_US),
        is_buyer_maker="is_buyer_maker",
    )


def book_frame(symbol: str, tickers: Iterable[BookTickerLike]) -> pl.DataFrame:
    """Book tickers in receive order as the ``book`` input of ``compute_features``; a ticker's
    time is its local receive time, as in the live path."""
    rows = [
        (
            t.receive_ns // 1000,
            float(t.bid_price),
            float(t.bid_qty),
            float(t.ask_price),
            float(t.ask_qty),
        )
        for t in tickers
    ]
    frame = pl.DataFrame(
        rows,
        schema={
            "time_us": pl.Int64,
            "bid_price": pl.Float64,
            "bid_qty": pl.Float64,
            "ask_price": pl.Float64,
            "ask_qty": pl.Float64,
        },
        orient="row",
    )
    return frame.select(
        instrument=pl.lit(symbol, pl.String),
        time=pl.col("time_us").cast(_UTC_US),
        bid_price="bid_price",
        bid_qty="bid_qty",
        ask_price="ask_price",
        ask_qty="ask_qty",
    )
