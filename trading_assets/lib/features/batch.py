"""Batch features and labels from bars (polars), for training sets and the gold feature table.

The definitions live in :mod:`trading_assets.lib.features.definitions`; the live twin is
:mod:`trading_assets.lib.features.incremental`. Both perform the same float operations in the
same order, so their values agree to the last bit on the same input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from trading_assets.lib.features.definitions import (
    BOOK,
    DEFAULT_CONFIG,
    FLOW,
    PRICE,
    SPREAD_BPS_FACTOR,
    TRADE_GROUPS,
    UNITS_PER_ONE,
    US_PER_SECOND,
    FeatureConfig,
    feature_names,
    label_names,
    own_groups,
)

BOOK_COLUMNS = ("instrument", "time", "bid_price", "bid_qty", "ask_price", "ask_qty")
_UTC_US = pl.Datetime("us", "UTC")


def infer_bar_seconds(bars: pl.DataFrame) -> int:
    """Bar length: the greatest common divisor of gaps between a symbol's bars (1 if unknown)."""
    gaps = (
        bars.select("instrument", start_s=pl.col("bar_start").dt.epoch("us") // US_PER_SECOND)
        .sort("instrument", "start_s")
        .select(pl.col("start_s").diff().over("instrument").drop_nulls().unique())
        .to_series()
    )
    positive = [int(g) for g in gaps.to_list() if g > 0]
    return math.gcd(*positive) if positive else 1


def _units(column: str) -> pl.Expr:
    """A float quantity as exact integer 1e-8 units (see definitions: exact window sums)."""
    return (pl.col(column) * UNITS_PER_ONE).round().cast(pl.Int64)


def _dense_grid(bars: pl.DataFrame, bar_s: int, flow: bool) -> pl.DataFrame:
    """Every bar interval of every symbol from its first to its last bar; empty ones filled."""
    keyed = bars.select(
        "instrument",
        pl.col("bar_start").cast(_UTC_US),
        pl.col("close").cast(pl.Float64),
        volume_u=_units("volume"),
        notional_u=_units("notional"),
        **(
            {
                "buy_u": _units("buy_volume"),
                "sell_u": _units("sell_volume"),
                "count": pl.col("trade_count").cast(pl.Int64),
            }
            if flow
            else {}
        ),
    )
    if keyed.select(pl.struct("instrument", "bar_start").is_duplicated().any()).item():
        raise ValueError("bars hold more than one row for a (symbol, bar_start)")
    spans = keyed.group_by("instrument").agg(
        first=pl.col("bar_start").min(), last=pl.col("bar_start").max()
    )
    grid = spans.select(
        "instrument",
        bar_start=pl.datetime_ranges("first", "last", interval=f"{bar_s}s", time_zone="UTC"),
    ).explode("bar_start")
    filled = [c for c in keyed.columns if c not in ("instrument", "bar_start", "close")]
    # Each symbol's first grid row is a real bar, so a plain forward fill never crosses symbols.
    return (
        grid.join(keyed, on=["instrument", "bar_start"], how="left")
        .sort("instrument", "bar_start")
        .with_columns(pl.col("close").forward_fill(), pl.col(filled).fill_null(0))
        .with_columns(
            index=pl.int_range(pl.len()).over("instrument"),
            abs_bar=pl.col("bar_start").dt.epoch("us") // (bar_s * US_PER_SECOND),
            event_timestamp=pl.col("bar_start") + pl.duration(seconds=bar_s),
        )
    )


# Division by a constant is written as multiplication by its reciprocal: polars evaluates it that
# way anyway, and the live path must do the very same float operation.


def _window_int_sum(column: str, n: int) -> pl.Expr:
    # Integers: a rolling sum is exact. Rows with index < n are masked: windows never mix symbols.
    return pl.col(column).rolling_sum(n)


def window_float_sum(x: pl.Expr, n: int, keys: tuple[str, ...] = ("instrument",)) -> pl.Expr:
    """Sum of the last n values per ``keys``: suffix of the previous epoch-aligned block + prefix
    of this one (the order of additions of ``incremental.BlockWindowSum``)."""
    block = pl.col("abs_bar") // n
    prefix = x.cum_sum().over(*keys, block)
    if n == 1:
        return prefix
    suffix = x.cum_sum(reverse=True).over(*keys, block)
    return (
        pl.when(pl.col("abs_bar") % n == n - 1).then(prefix).otherwise(suffix.shift(n - 1) + prefix)
    )


def ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator as floats, null unless the denominator is positive."""
    return pl.when(denominator > 0).then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))


def _price_features(config: FeatureConfig, bar_s: int) -> list[pl.Expr]:
    close = pl.col("close")
    squared_return = pl.col("log_return") * pl.col("log_return")
    vwaps, devs, rvs, moms = [], [], [], []
    for w, n in zip(config.windows_s, config.bars_per_window(bar_s), strict=True):
        vwap = ratio(_window_int_sum("notional_u", n), _window_int_sum("volume_u", n))
        vwaps.append(vwap.alias(f"vwap_{w}s"))
        devs.append((close / vwap).log().alias(f"vwap_dev_{w}s"))
        rvs.append(window_float_sum(squared_return, n).sqrt().alias(f"rv_{w}s"))
        moms.append((close / close.shift(n)).log().alias(f"mom_{w}s"))
    return [*vwaps, *devs, *rvs, *moms]


def _flow_features(config: FeatureConfig, bar_s: int) -> list[pl.Expr]:
    imbalances, intensities = [], []
    for w, n in zip(config.windows_s, config.bars_per_window(bar_s), strict=True):
        buy, sell = _window_int_sum("buy_u", n), _window_int_sum("sell_u", n)
        imbalances.append(ratio(buy - sell, buy + sell).alias(f"flow_imb_{w}s"))
        count = _window_int_sum("count", n).cast(pl.Float64)
        intensities.append((count * (1.0 / w)).alias(f"intensity_{w}s"))
    return [*imbalances, *intensities]


def _book_point_features() -> list[pl.Expr]:
    bid, ask = pl.col("bid_price"), pl.col("ask_price")
    spread, total = ask - bid, ask + bid
    imbalance = pl.col("book_imb")
    return [
        imbalance,
        (spread * imbalance / total).alias("microprice_dev"),
        (SPREAD_BPS_FACTOR * spread / total).alias("spread_bps"),
    ]


def _book_window_features(config: FeatureConfig, bar_s: int) -> list[pl.Expr]:
    sample = pl.col("book_imb").fill_null(0.0)
    missing = pl.col("book_imb").is_null().cast(pl.Int64)
    out = []
    for w, n in zip(config.windows_s, config.bars_per_window(bar_s), strict=True):
        mean = window_float_sum(sample, n) * (1.0 / n)
        out.append(pl.when(missing.rolling_sum(n) == 0).then(mean).alias(f"book_imb_{w}s"))
    return out


def _join_book(grid: pl.DataFrame, book: pl.DataFrame) -> pl.DataFrame:
    """The last book ticker at or before each event_timestamp, and its imbalance."""
    quotes = (
        book.select(
            "instrument",
            pl.col("time").cast(_UTC_US),
            *(pl.col(c).cast(pl.Float64) for c in BOOK_COLUMNS[2:]),
        )
        .with_row_index("_order")
        .sort("instrument", "time", "_order")
        # Several tickers in one microsecond: the last received is the book at that time.
        .unique(subset=["instrument", "time"], keep="last", maintain_order=True)
        .drop("_order")
        .sort("time")
    )
    bid_qty, ask_qty = pl.col("bid_qty"), pl.col("ask_qty")
    joined = grid.sort("event_timestamp").join_asof(
        quotes,
        left_on="event_timestamp",
        right_on="time",
        by="instrument",
        strategy="backward",
        check_sortedness=False,  # both sides were just sorted by time
    )
    return joined.sort("instrument", "bar_start").with_columns(
        book_imb=ratio(bid_qty - ask_qty, bid_qty + ask_qty)
    )


def _warm_up_mask(exprs: list[pl.Expr], config: FeatureConfig, bar_s: int) -> list[pl.Expr]:
    """Null every windowed feature whose window reaches before the symbol's first bar."""
    bars_of = {
        f"_{w}s": n for w, n in zip(config.windows_s, config.bars_per_window(bar_s), strict=True)
    }
    masked = []
    for expr in exprs:
        name = expr.meta.output_name()
        n = next((n for suffix, n in bars_of.items() if name.endswith(suffix)), None)
        masked.append(expr if n is None else pl.when(pl.col("index") >= n).then(expr).alias(name))
    return masked


def compute_features(
    bars: pl.DataFrame,
    config: FeatureConfig = DEFAULT_CONFIG,
    groups: Sequence[str] = TRADE_GROUPS,
    book: pl.DataFrame | None = None,
    bar_s: int | None = None,
) -> pl.DataFrame:
    """Features of every symbol and bar interval (empty intervals included), in feature_names order.

    ``bars``: the lakehouse bar columns (any bar length; ``bar_s`` is inferred when not given).
    ``book``: BOOK_COLUMNS (``time`` UTC µs, prices and quantities), needed for the book group.
    Output: ``symbol``, ``event_timestamp`` (bar end, UTC µs) and the features as Float64.
    """
    chosen = own_groups(groups)
    names = feature_names(config, chosen)
    if bars.is_empty():
        schema = {"instrument": pl.String, "event_timestamp": _UTC_US} | dict.fromkeys(
            names, pl.Float64
        )
        return pl.DataFrame(schema=schema)
    bar_s = bar_s or infer_bar_seconds(bars)
    flow = FLOW in chosen
    if (
        flow
        and bars.select(
            pl.any_horizontal(pl.col("buy_volume", "sell_volume", "trade_count").is_null()).any()
        ).item()
    ):
        raise ValueError("flow features need taker buy/sell volumes and trade counts in every bar")
    if BOOK in chosen and book is None:
        raise ValueError("book features need a book frame (bookTicker data)")

    grid = _dense_grid(bars, bar_s, flow).with_columns(
        log_return=(pl.col("close") / pl.col("close").shift(1)).log()
    )
    grid = grid.with_columns(
        log_return=pl.when(pl.col("index") > 0).then(pl.col("log_return")).otherwise(0.0)
    )
    exprs: list[pl.Expr] = []
    if PRICE in chosen:
        exprs += _price_features(config, bar_s)
    if flow:
        exprs += _flow_features(config, bar_s)
    if BOOK in chosen:
        assert book is not None
        grid = _join_book(grid, book)
        exprs += _book_point_features() + _book_window_features(config, bar_s)
    out = grid.select("instrument", "event_timestamp", *_warm_up_mask(exprs, config, bar_s))
    return out.select("instrument", "event_timestamp", *(pl.col(n).cast(pl.Float64) for n in names))


def compute_labels(
    bars: pl.DataFrame, config: FeatureConfig = DEFAULT_CONFIG, bar_s: int | None = None
) -> pl.DataFrame:
    """Forward log return from the close at event_timestamp to the close h seconds later, and its
    sign (−1, 0, 1); null where that future bar is beyond the data. Labels look ahead by design."""
    log_return_name, sign_name = label_names(config)
    schema = {"instrument": pl.String, "event_timestamp": _UTC_US, log_return_name: pl.Float64}
    if bars.is_empty():
        return pl.DataFrame(schema=schema | {sign_name: pl.Int64})
    bar_s = bar_s or infer_bar_seconds(bars)
    k = config.label_bars(bar_s)
    close = pl.col("close")
    forward = (close.shift(-k).over("instrument") / close).log()
    return (
        _dense_grid(bars, bar_s, flow=False)
        .select("instrument", "event_timestamp", forward.alias(log_return_name))
        .with_columns(pl.col(log_return_name).sign().cast(pl.Int64).alias(sign_name))
    )
