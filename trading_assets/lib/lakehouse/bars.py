"""OHLCV bars from silver trades (1 s) and rolled up from 1 s bars (1 m).

Bars exist only for intervals with at least one trade (no forward fill). Open/close are the first
and last trade by trade id; the taker side comes from ``is_buyer_maker`` (a buyer-maker trade is a
taker sell). Bar values are Float64 (bars feed analytics, silver keeps the exact decimals); the
sums behind them are exact.
"""

from __future__ import annotations

import polars as pl

from trading_assets.lib.lakehouse.schemas import PRICE_PRECISION, PRICE_SCALE

UNITS_PER_ONE = 10**PRICE_SCALE
NOTIONAL_UNITS_PER_ONE = UNITS_PER_ONE * UNITS_PER_ONE

SILVER_BAR_COLUMNS = (
    "trade_date",
    "instrument",
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
    "instrument",
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
    """Aggregate silver trades (trade_id, price, qty, event_time, is_buyer_maker, ...) to bars.

    Volumes and notional are summed exactly, in integer 1e-8 units (notional in 1e-16), as the
    live bar builder sums them, and each becomes one float at the end. The last bits of a float
    sum depend on where a bar's trades sit in memory, so they would differ between a day computed
    whole and in chunks; exact sums cannot.
    """
    ordered = trades if trades["trade_id"].is_sorted() else trades.sort("trade_id")
    taker_sell = pl.col("is_buyer_maker")
    return (
        ordered.lazy()
        .with_columns(
            bar_start=pl.col("event_time").dt.truncate(every),
            p=pl.col("price").cast(pl.Float64),
            q=_units("qty"),
        )
        .with_columns(
            pq=pl.col("q").cast(pl.Int128) * _units("price").cast(pl.Int128),
            sell_q=pl.when(taker_sell).then(pl.col("q")).otherwise(0),
            buy_q=pl.when(taker_sell).then(0).otherwise(pl.col("q")),
        )
        # maintain_order keeps each bar's rows in trade-id order, so first/last are open/close.
        .group_by("trade_date", "instrument", "bar_start", maintain_order=True)
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
        .with_columns(*_floats_of_units())
        .with_columns(vwap=pl.col("notional") / pl.col("volume"))
        .select(BAR_COLUMNS)
        .sort("bar_start")
        .collect()
    )


def _units(column: str) -> pl.Expr:
    """A silver decimal (scale 8) as an exact integer count of 1e-8."""
    value = pl.col(column).cast(pl.Decimal(PRICE_PRECISION, PRICE_SCALE))
    return (value * UNITS_PER_ONE).cast(pl.Int64)


_QUANTITIES = ("volume", "buy_volume", "sell_volume")


def _floats_of_units() -> list[pl.Expr]:
    """Bar sums in integer units → floats. A multiplication, never a division by a constant:
    polars evaluates that as one or as a multiplication by the reciprocal depending on the
    data's length, which would change last bits between a day computed whole and in chunks."""
    return [
        pl.col(_QUANTITIES).cast(pl.Float64) * (1 / UNITS_PER_ONE),
        pl.col("notional").cast(pl.Float64) * (1 / NOTIONAL_UNITS_PER_ONE),
    ]


def _units_of_floats() -> list[pl.Expr]:
    """A bar's float sums back to integer units (exact for the quantities, which are whole
    1e-8 units; the notional to its float's precision), so coarser bars add integers."""
    return [
        (pl.col(_QUANTITIES) * UNITS_PER_ONE).round().cast(pl.Int64),
        (pl.col("notional") * NOTIONAL_UNITS_PER_ONE).round().cast(pl.Int128),
    ]


def rollup_bars(bars: pl.DataFrame, every: str = "1m") -> pl.DataFrame:
    """Coarser bars from finer ones (e.g. 1 s → 1 m); sums add up, so vwap stays exact.

    The sums are added as integers (see ``_units_of_floats``): a coarser bar's volumes are the
    very ones computed from its trades, and nothing depends on where the bars sit in memory.
    """
    return (
        bars.lazy()
        .sort("bar_start")
        .with_columns(pl.col("bar_start").dt.truncate(every), *_units_of_floats())
        .group_by("trade_date", "instrument", "bar_start", maintain_order=True)
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
        .with_columns(*_floats_of_units())
        .with_columns(vwap=pl.col("notional") / pl.col("volume"))
        .select(BAR_COLUMNS)
        .sort("bar_start")
        .collect()
    )
