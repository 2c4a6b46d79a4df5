"""Klines (candlesticks) as bars, so the same feature code runs on them.

Binance kline files carry OHLC and volume, and in full form quote volume, trade count and taker-buy
volume. When quote volume is absent the notional is approximated by volume × typical price
((high + low + close) / 3), so ``vwap`` is an approximation; when trade count or taker-buy volume
is absent those columns are null and only the price group can be computed.
"""

from __future__ import annotations

import polars as pl

from trading_assets.lib.lakehouse.bars import BAR_COLUMNS

_UTC_US = pl.Datetime("us", "UTC")


def bars_from_klines(klines: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """Kline rows (``open_time`` in ms or a datetime, open, high, low, close, volume, and
    optionally quote_volume, count, taker_buy_volume) → the lakehouse bar columns."""
    columns = set(klines.columns)
    open_time = pl.col("open_time")
    if klines.schema["open_time"].is_integer():
        bar_start = pl.from_epoch(open_time, time_unit="ms").dt.replace_time_zone("UTC")
    else:
        bar_start = open_time.cast(_UTC_US)
    price = {c: pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")}
    typical = (price["high"] + price["low"] + price["close"]) / 3.0
    notional = (
        pl.col("quote_volume").cast(pl.Float64)
        if "quote_volume" in columns
        else price["volume"] * typical
    )
    buy = (
        pl.col("taker_buy_volume").cast(pl.Float64)
        if "taker_buy_volume" in columns
        else pl.lit(None, pl.Float64)
    )
    count = pl.col("count").cast(pl.Int64) if "count" in columns else pl.lit(None, pl.Int64)
    return (
        klines.select(
            bar_start=bar_start.cast(_UTC_US),
            **price,
            notional=notional,
            buy_volume=buy,
            trade_count=count,
        )
        .with_columns(
            trade_date=pl.col("bar_start").dt.date(),
            symbol=pl.lit(symbol.upper()),
            vwap=pl.when(pl.col("volume") > 0).then(pl.col("notional") / pl.col("volume")),
            sell_volume=pl.col("volume") - pl.col("buy_volume"),
            first_trade_id=pl.lit(None, pl.Int64),
            last_trade_id=pl.lit(None, pl.Int64),
        )
        .select(BAR_COLUMNS)
        .sort("bar_start")
    )
