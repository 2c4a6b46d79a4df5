"""OHLCV bars from silver trades (1 s) and rolled up from 1 s bars (1 m).

Bars exist only for intervals with at least one trade (no forward fill). Open/close are the first
and last trade by trade id; the taker side comes from ``is_buyer_maker`` (a buyer-maker trade is a
taker sell). Float64 is fine here: bars feed analytics, silver keeps the exact decimals.
"""

from __future__ import annotations

import polars as pl

SILVER_BAR_COLUMNS = (
    "trade_date",
    "symbol",
    "trade_id",
    "price",
    "qty",
    "event_time",
    "is_buyer_maker",
)
"""The silver columns bars are computed from: what bars_1s reads, and what a silver source of
the sidecar's fallback must return at least."""

BAR_COLUMNS = (
    "trade_date",
    "symbol",
    "bar_start",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "vwap",
    "buy_volume",
    "sell_volume",
    "trade_count",
    "first_trade_id",
    "last_trade_id",
)


def bars_from_trades(trades: pl.DataFrame, every: str = "1s") -> pl.DataFrame:
    """Aggregate silver trades (trade_id, price, qty, event_time, is_buyer_maker, ...) to bars."""
    ordered = trades if trades["trade_id"].is_sorted() else trades.sort("trade_id")
    q = pl.col("qty").cast(pl.Float64)
    p = pl.col("price").cast(pl.Float64)
    taker_sell = pl.col("is_buyer_maker")
    return (
        ordered.lazy()
        .with_columns(bar_start=pl.col("event_time").dt.truncate(every), p=p, q=q)
        .with_columns(
            pq=pl.col("p") * pl.col("q"),
            sell_q=pl.when(taker_sell).then(pl.col("q")).otherwise(0.0),
            buy_q=pl.when(taker_sell).then(0.0).otherwise(pl.col("q")),
        )
        # maintain_order keeps each bar's rows in trade-id order, so first/last are open/close.
        .group_by("trade_date", "symbol", "bar_start", maintain_order=True)
        .agg(
            open=pl.col("p").first(),
            high=pl.col("p").max(),
            low=pl.col("p").min(),
            close=pl.col("p").last(),
            volume=pl.col("q").sum(),
            notional=pl.col("pq").sum(),
            buy_volume=pl.col("buy_q").sum(),
            sell_volume=pl.col("sell_q").sum(),
            trade_count=pl.len().cast(pl.Int64),
            first_trade_id=pl.col("trade_id").first(),
            last_trade_id=pl.col("trade_id").last(),
        )
        .with_columns(vwap=pl.col("notional") / pl.col("volume"))
        .select(BAR_COLUMNS)
        .sort("bar_start")
        .collect()
    )


def rollup_bars(bars: pl.DataFrame, every: str = "1m") -> pl.DataFrame:
    """Coarser bars from finer ones (e.g. 1 s → 1 m); sums add up, so vwap stays exact."""
    return (
        bars.lazy()
        .sort("bar_start")
        .with_columns(pl.col("bar_start").dt.truncate(every))
        .group_by("trade_date", "symbol", "bar_start", maintain_order=True)
        .agg(
            open=pl.col("open").first(),
            high=pl.col("high").max(),
            low=pl.col("low").min(),
            close=pl.col("close").last(),
            volume=pl.col("volume").sum(),
            notional=pl.col("notional").sum(),
            buy_volume=pl.col("buy_volume").sum(),
            sell_volume=pl.col("sell_volume").sum(),
            trade_count=pl.col("trade_count").sum(),
            first_trade_id=pl.col("first_trade_id").first(),
            last_trade_id=pl.col("last_trade_id").last(),
        )
        .with_columns(vwap=pl.col("notional") / pl.col("volume"))
        .select(BAR_COLUMNS)
        .sort("bar_start")
        .collect()
    )
