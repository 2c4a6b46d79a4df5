"""Klines (candlesticks) as bars, so the same feature code runs on them.

Binance kline files carry OHLC and volume, and in full form quote volume, trade count and taker-buy
volume. When quote volume is absent the notional is approximated by volume × typical price
((high + low + close) / 3), so ``vwap`` is an approximation; when trade count or taker-buy volume
is absent those columns are null and only the price group can be computed. A model on klines reads
``kline_model_features``: the groups the file supports, without the display-only level features
(BTCUSDT closed between 8,676 and 10,350 USDT in May–June 2020 and between 30,101 and 64,800 in
April–May 2021: a level learnt on one period is out of range on the other).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from trading_assets.lib.features.definitions import (
    DEFAULT_CONFIG,
    FLOW,
    PRICE,
    FeatureConfig,
    model_feature_names,
)
from trading_assets.lib.lakehouse.bars import BAR_COLUMNS

FLOW_KLINE_COLUMNS = frozenset({"count", "taker_buy_volume"})

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
            instrument=pl.lit(symbol.upper()),
            vwap=pl.when(pl.col("volume") > 0).then(pl.col("notional") / pl.col("volume")),
            sell_volume=pl.col("volume") - pl.col("buy_volume"),
            first_trade_id=pl.lit(None, pl.Int64),
            last_trade_id=pl.lit(None, pl.Int64),
        )
        .select(BAR_COLUMNS)
        .sort("bar_start")
    )


def kline_groups(columns: Iterable[str]) -> tuple[str, ...]:
    """The feature groups klines with these columns support: flow needs the trade count and the
    taker-buy volume, which the six-column files lack."""
    return (PRICE, FLOW) if set(columns) >= FLOW_KLINE_COLUMNS else (PRICE,)


def kline_model_features(
    columns: Iterable[str], config: FeatureConfig = DEFAULT_CONFIG
) -> list[str]:
    """What a model trained on klines with these columns reads: their groups' model inputs."""
    return model_feature_names(config, kline_groups(columns))
