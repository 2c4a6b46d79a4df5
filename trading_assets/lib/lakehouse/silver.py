"""Silver: typed, validated, deduplicated trades; every rejected bronze row goes to quarantine.

Prices and quantities become exact decimals (no float on the way: a strict format check first,
so the decimal cast can never round). Binance's ``time`` is milliseconds before 2025-01-01 and
microseconds from then on; the unit is told apart per value by magnitude. Each bronze row ends
up in exactly one of silver or quarantine, so bronze = silver + quarantine always holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from trading_assets.lib.lakehouse.schemas import (
    PRICE_PRECISION,
    PRICE_SCALE,
    QUOTE_PRECISION,
    RAW_TRADE_COLUMNS,
)

# Below this an epoch value is milliseconds (1e14 ms is the year 5138; 1e14 µs is 1973).
MICROSECONDS_THRESHOLD = 10**14

SILVER_COLUMNS = (
    "trade_date",
    "symbol",
    "trade_id",
    "price",
    "qty",
    "quote_qty",
    "event_time",
    "is_buyer_maker",
    "is_best_match",
    "source",
    "source_file",
    "ingested_at",
)
QUARANTINE_COLUMNS = (
    "trade_date",
    "symbol",
    "line_no",
    *RAW_TRADE_COLUMNS,
    "reason",
    "source",
    "source_file",
    "ingested_at",
)


class Reason:
    UNPARSEABLE_ID = "unparseable_id"
    UNPARSEABLE_PRICE = "unparseable_price"
    NONPOSITIVE_PRICE = "nonpositive_price"
    UNPARSEABLE_QTY = "unparseable_qty"
    NONPOSITIVE_QTY = "nonpositive_qty"
    UNPARSEABLE_QUOTE_QTY = "unparseable_quote_qty"
    UNPARSEABLE_TIME = "unparseable_time"
    TIME_OUTSIDE_PARTITION = "time_outside_partition"
    UNPARSEABLE_IS_BUYER_MAKER = "unparseable_is_buyer_maker"
    UNPARSEABLE_IS_BEST_MATCH = "unparseable_is_best_match"
    DUPLICATE_TRADE_ID = "duplicate_trade_id"


@dataclass(frozen=True)
class SilverSplit:
    silver: pl.DataFrame
    quarantine: pl.DataFrame


def epoch_to_microseconds(raw: pl.Expr) -> pl.Expr:
    """Binance epoch integer (ms or µs, told apart by magnitude) → µs since the epoch."""
    return pl.when(raw < MICROSECONDS_THRESHOLD).then(raw * 1_000).otherwise(raw)


def day_bounds_us(day: dt.date) -> tuple[int, int]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    start_us = int(start.timestamp()) * 1_000_000
    return start_us, start_us + 86_400 * 1_000_000


# (reason, boolean column name) in the order reasons are listed in quarantine.reason.
_CHECKS = (
    (Reason.UNPARSEABLE_ID, "_bad_id"),
    (Reason.UNPARSEABLE_PRICE, "_bad_price"),
    (Reason.NONPOSITIVE_PRICE, "_nonpositive_price"),
    (Reason.UNPARSEABLE_QTY, "_bad_qty"),
    (Reason.NONPOSITIVE_QTY, "_nonpositive_qty"),
    (Reason.UNPARSEABLE_QUOTE_QTY, "_bad_quote_qty"),
    (Reason.UNPARSEABLE_TIME, "_bad_time"),
    (Reason.TIME_OUTSIDE_PARTITION, "_outside_day"),
    (Reason.UNPARSEABLE_IS_BUYER_MAKER, "_bad_maker"),
    (Reason.UNPARSEABLE_IS_BEST_MATCH, "_bad_best"),
    (Reason.DUPLICATE_TRADE_ID, "_duplicate"),
)


# More fractional digits than the scale, or an exponent (which can hide them).
_NEEDS_ROUNDING = rf"\.\d{{{PRICE_SCALE + 1}}}|[eE]"


def _decimal(column: str, precision: int) -> pl.Expr:
    """Exact decimal, or null when the text is no number or would need rounding to fit.

    The cast itself rejects garbage and too many integer digits, but it would round extra
    fractional digits, so values that need rounding are turned away explicitly.
    """
    text = pl.col(column)
    value = text.cast(pl.Decimal(precision, PRICE_SCALE), strict=False)
    return pl.when(~text.str.contains(_NEEDS_ROUNDING)).then(value)


def _flag(column: str) -> pl.Expr:
    """Binance writes Python-style ``True``/``False`` (also accepted: lower case); else null."""
    text = pl.col(column)
    return (
        pl.when((text == "True") | (text == "true"))
        .then(True)
        .when((text == "False") | (text == "false"))
        .then(False)
    )


def _type_and_check(bronze: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """Typed columns plus one boolean column per validation rule (duplicates excluded)."""
    start_us, end_us = day_bounds_us(day)
    return bronze.with_columns(
        trade_id=pl.col("id").str.to_integer(strict=False),
        price_value=_decimal("price", PRICE_PRECISION),
        qty_value=_decimal("qty", PRICE_PRECISION),
        quote_value=_decimal("quote_qty", QUOTE_PRECISION),
        time_us=epoch_to_microseconds(pl.col("time").str.to_integer(strict=False)),
        maker_value=_flag("is_buyer_maker"),
        best_value=_flag("is_best_match"),
    ).with_columns(
        _bad_id=pl.col("trade_id").is_null(),
        _bad_price=pl.col("price_value").is_null(),
        _nonpositive_price=(pl.col("price_value") <= 0).fill_null(False),
        _bad_qty=pl.col("qty_value").is_null(),
        _nonpositive_qty=(pl.col("qty_value") <= 0).fill_null(False),
        _bad_quote_qty=pl.col("quote_value").is_null(),
        _bad_time=pl.col("time_us").is_null(),
        _outside_day=((pl.col("time_us") < start_us) | (pl.col("time_us") >= end_us)).fill_null(
            False
        ),
        _bad_maker=pl.col("maker_value").is_null(),
        # is_best_match is informational: only a present but unreadable value is a defect.
        _bad_best=pl.col("best_value").is_null() & (pl.col("is_best_match").fill_null("") != ""),
    )


def _duplicates(trade_ids: pl.Series, rejected: pl.Series) -> pl.Series:
    """True for a valid row whose trade id already appeared on an earlier valid row."""
    candidates = trade_ids.filter(~rejected)
    if candidates.is_sorted() and not (candidates.diff() == 0).any():
        # Binance files are in strictly increasing id order: no hashing needed.
        return pl.repeat(False, trade_ids.len(), dtype=pl.Boolean, eager=True).alias("_duplicate")
    ids = pl.DataFrame({"id": trade_ids, "rejected": rejected})
    return ids.select(
        _duplicate=~pl.col("rejected")
        & ~pl.when(~pl.col("rejected")).then(pl.col("id")).is_first_distinct()
    ).to_series()


def split_silver(bronze: pl.DataFrame, day: dt.date) -> SilverSplit:
    """Type, validate and deduplicate one (day, symbol) partition of bronze rows."""
    if not bronze["line_no"].is_sorted():
        bronze = bronze.sort("line_no")
    checked = _type_and_check(bronze, day)
    flags = [name for _, name in _CHECKS[:-1]]
    rejected = checked.select(pl.any_horizontal(flags)).to_series()
    checked = checked.with_columns(_duplicates(checked["trade_id"], rejected))
    rejected = rejected | checked["_duplicate"]

    accepted = checked if not rejected.any() else checked.filter(~rejected)
    silver = accepted.select(
        "trade_date",
        "symbol",
        "trade_id",
        pl.col("price_value").alias("price"),
        pl.col("qty_value").alias("qty"),
        pl.col("quote_value").alias("quote_qty"),
        pl.col("time_us").cast(pl.Datetime("us", "UTC")).alias("event_time"),
        pl.col("maker_value").alias("is_buyer_maker"),
        pl.col("best_value").alias("is_best_match"),
        "source",
        "source_file",
        "ingested_at",
    )
    if not silver["trade_id"].is_sorted():
        silver = silver.sort("trade_id")
    quarantine = checked.filter(rejected).with_columns(
        reason=pl.concat_str(
            [pl.when(pl.col(name)).then(pl.lit(reason)) for reason, name in _CHECKS],
            separator=";",
            ignore_nulls=True,
        )
    )
    return SilverSplit(silver=silver, quarantine=quarantine.select(QUARANTINE_COLUMNS))


def reason_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    """Rows per single reason (a row with two reasons counts under both)."""
    if quarantine.is_empty():
        return {}
    counts = (
        quarantine.select(pl.col("reason").str.split(";").explode())
        .group_by("reason")
        .len()
        .sort("reason")
    )
    return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))
