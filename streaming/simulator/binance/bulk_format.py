"""Binance bulk-file (data.binance.vision) views of a synthetic day: columns, units, CSV text."""

from __future__ import annotations

import datetime as dt
import zipfile
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from streaming.simulator.synthetic import DayTape

E8 = 100_000_000
US_PER_MINUTE = 60_000_000

TRADES_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
AGG_TRADES_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",
)
KLINES_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)


def decimal_expr(column: str) -> pl.Expr:
    """A non-negative 1e-8 integer column as Binance's 8-decimal string ("61837.63000000")."""
    value = pl.col(column)
    return pl.concat_str(
        [(value // E8).cast(pl.Utf8), pl.lit("."), (value % E8).cast(pl.Utf8).str.zfill(8)]
    )


def format_e8(value: int) -> str:
    """One 1e-8 integer as an 8-decimal string."""
    return f"{value // E8}.{value % E8:08d}"


def trades_frame(tape: DayTape, time_divisor: int) -> pl.DataFrame:
    """The day's trades in the bulk trades CSV columns."""
    return tape.trades_frame().select(
        pl.col("id").cast(pl.Int64),
        decimal_expr("price_e8").alias("price"),
        decimal_expr("qty_e8").alias("qty"),
        decimal_expr("quote_e8").alias("quote_qty"),
        (pl.col("time_us") // time_divisor).cast(pl.Int64).alias("time"),
        pl.col("is_buyer_maker").cast(pl.Boolean),
        pl.lit(True).alias("is_best_match"),
    )


def agg_trades_frame(tape: DayTape, time_divisor: int) -> pl.DataFrame:
    """The day's aggTrades in the bulk aggTrades CSV columns."""
    return tape.agg_trades_frame().select(
        pl.col("agg_id").cast(pl.Int64).alias("agg_trade_id"),
        decimal_expr("price_e8").alias("price"),
        decimal_expr("qty_e8").alias("quantity"),
        pl.col("first_trade_id").cast(pl.Int64),
        pl.col("last_trade_id").cast(pl.Int64),
        (pl.col("time_us") // time_divisor).cast(pl.Int64).alias("transact_time"),
        pl.col("is_buyer_maker").cast(pl.Boolean),
        pl.lit(True).alias("is_best_match"),
    )


def minute_bars(tape: DayTape, day_start_us: int, until_us: int | None = None) -> pl.DataFrame:
    """Minute bars of the day (up to ``until_us``'s minute if given).

    A minute without trades repeats the previous close with zero volume, as Binance's klines do.
    """
    trades = tape.trades_frame()
    minutes_shown = 1440
    if until_us is not None:
        trades = trades.filter(pl.col("time_us") <= until_us)
        minutes_shown = max(0, min(1440, (until_us - day_start_us) // US_PER_MINUTE + 1))
    trades = trades.with_columns(
        ((pl.col("time_us") - day_start_us) // US_PER_MINUTE).alias("minute"),
        pl.when(pl.col("is_buyer_maker")).then(0).otherwise(pl.col("qty_e8")).alias("buy_qty"),
        pl.when(pl.col("is_buyer_maker")).then(0).otherwise(pl.col("quote_e8")).alias("buy_q"),
    )
    bars = trades.group_by("minute").agg(
        pl.col("price_e8").first().alias("open"),
        pl.col("price_e8").max().alias("high"),
        pl.col("price_e8").min().alias("low"),
        pl.col("price_e8").last().alias("close"),
        pl.col("qty_e8").sum().alias("volume"),
        pl.col("quote_e8").sum().alias("quote_volume"),
        pl.len().cast(pl.Int64).alias("count"),
        pl.col("buy_qty").sum().alias("taker_buy_volume"),
        pl.col("buy_q").sum().alias("taker_buy_quote_volume"),
    )
    minutes = pl.DataFrame({"minute": np.arange(minutes_shown, dtype=np.int64)})
    open_e8 = tape.open_ticks * tape.instrument.tick_e8
    full = minutes.join(bars, on="minute", how="left").sort("minute")
    carried = pl.col("close").forward_fill().shift(1).fill_null(open_e8)
    return full.select(
        (pl.col("minute") * US_PER_MINUTE + day_start_us).alias("open_time_us"),
        pl.col("open").fill_null(carried),
        pl.col("high").fill_null(carried),
        pl.col("low").fill_null(carried),
        pl.col("close").fill_null(carried),
        *(
            pl.col(name).fill_null(0)
            for name in (
                "volume",
                "quote_volume",
                "count",
                "taker_buy_volume",
                "taker_buy_quote_volume",
            )
        ),
    )


def klines_frame(bars: pl.DataFrame, time_divisor: int) -> pl.DataFrame:
    """Numeric minute bars in the bulk 1m klines CSV columns."""
    return bars.select(
        (pl.col("open_time_us") // time_divisor).alias("open_time"),
        *(decimal_expr(name).alias(name) for name in ("open", "high", "low", "close", "volume")),
        ((pl.col("open_time_us") + US_PER_MINUTE) // time_divisor - 1).alias("close_time"),
        decimal_expr("quote_volume").alias("quote_volume"),
        pl.col("count").cast(pl.Int64),
        decimal_expr("taker_buy_volume").alias("taker_buy_volume"),
        decimal_expr("taker_buy_quote_volume").alias("taker_buy_quote_volume"),
        pl.lit("0").alias("ignore"),
    )


def to_binance_csv(frame: pl.DataFrame) -> bytes:
    """Headerless CSV with Python-style booleans ("True"/"False"), as Binance writes them."""
    as_text = frame.with_columns(
        pl.when(pl.col(name)).then(pl.lit("True")).otherwise(pl.lit("False")).alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.Boolean
    )
    return as_text.write_csv(include_header=False, quote_style="never").encode()


def member_info(name: str, day: dt.date) -> zipfile.ZipInfo:
    """A bulk zip's member stamped with its day's midnight, so a zip made again (after a cache
    eviction, or for the CHECKSUM served beside it) has the same bytes; write it with
    ``writestr(info, data, zipfile.ZIP_DEFLATED, 1)``."""
    info = zipfile.ZipInfo(name, date_time=(day.year, day.month, day.day, 0, 0, 0))
    info.external_attr = 0o600 << 16
    return info
