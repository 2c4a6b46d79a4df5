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

from trading_assets.lib.lakehouse.bronze import TOO_FEW_FIELDS, TOO_MANY_FIELDS, field_count_flags
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
    "instrument",
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
    "instrument",
    "line_no",
    *RAW_TRADE_COLUMNS,
    "reason",
    "source",
    "source_file",
    "ingested_at",
)


class Reason:
    TOO_FEW_FIELDS = TOO_FEW_FIELDS  # the CSV line had fewer than seven fields
    TOO_MANY_FIELDS = TOO_MANY_FIELDS  # ... or more (bronze keeps the extra ones)
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
    (Reason.TOO_FEW_FIELDS, "_too_few_fields"),
    (Reason.TOO_MANY_FIELDS, "_too_many_fields"),
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
        _too_few_fields=field_count_flags()[TOO_FEW_FIELDS],
        _too_many_fields=field_count_flags()[TOO_MANY_FIELDS],
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


class TradeIdLedger:
    """The trade ids silver has accepted so far, so that a later copy of one is a duplicate
    even when its first copy was in an earlier chunk of the partition.

    Binance's files are in strictly increasing id order: a chunk whose valid ids all rise past
    every id so far holds no duplicate, and no hashing is needed. Otherwise the chunk's ids are
    checked against each other and against every earlier one (8 bytes per accepted trade).
    """

    def __init__(self) -> None:
        self._accepted: list[pl.Series] = []
        self._largest: int | None = None

    def duplicates(self, trade_ids: pl.Series, rejected: pl.Series) -> pl.Series:
        """True for a valid row whose trade id already appeared on an earlier valid row."""
        candidates = trade_ids.filter(~rejected)
        rising = candidates.is_sorted() and not (candidates.diff() == 0).any()
        if rising and (
            self._largest is None or candidates.is_empty() or candidates[0] > self._largest
        ):
            duplicate = pl.repeat(False, trade_ids.len(), dtype=pl.Boolean, eager=True)
        else:
            earlier = pl.concat(self._accepted) if self._accepted else pl.Series([], dtype=pl.Int64)
            ids = pl.DataFrame({"id": trade_ids, "rejected": rejected})
            valid_id = pl.when(~pl.col("rejected")).then(pl.col("id"))
            duplicate = ids.select(
                ~pl.col("rejected")
                & (
                    ~valid_id.is_first_distinct()
                    | pl.col("id").is_in(earlier.implode()).fill_null(False)
                )
            ).to_series()
        accepted = trade_ids.filter(~rejected & ~duplicate)
        if not accepted.is_empty():
            self._accepted.append(accepted)
            largest = int(accepted.max())  # type: ignore[arg-type]
            self._largest = largest if self._largest is None else max(self._largest, largest)
        return duplicate.alias("_duplicate")


class SilverRefiner:
    """Types, validates and deduplicates one partition's bronze rows chunk by chunk, with the
    very results ``split_silver`` gives for all of them at once.

    Chunks must come in line order (each one's ``line_no`` above every earlier chunk's), as the
    first copy of a trade id is the one kept. ``reasons`` counts the quarantined rows so far.
    """

    def __init__(self, day: dt.date) -> None:
        self.day = day
        self.reasons: dict[str, int] = {}
        self._ledger = TradeIdLedger()
        self._last_line: int | None = None

    def split(self, bronze: pl.DataFrame) -> SilverSplit:
        """This chunk's silver rows (in trade-id order) and its quarantined rows with reasons."""
        if bronze.is_empty():
            return _split_rows(bronze, self.day, self._ledger)
        first_line = bronze["line_no"].min()
        if self._last_line is not None and first_line <= self._last_line:  # type: ignore[operator]
            raise ValueError(
                f"bronze chunks out of line order: line {first_line} after line {self._last_line}"
            )
        self._last_line = bronze["line_no"].max()  # type: ignore[assignment]
        split = _split_rows(bronze, self.day, self._ledger)
        for reason, count in reason_counts(split.quarantine).items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        self.reasons = dict(sorted(self.reasons.items()))
        return split


def split_silver(bronze: pl.DataFrame, day: dt.date) -> SilverSplit:
    """Type, validate and deduplicate one (day, symbol) partition of bronze rows."""
    return _split_rows(bronze, day, TradeIdLedger())


def _split_rows(bronze: pl.DataFrame, day: dt.date, ledger: TradeIdLedger) -> SilverSplit:
    if not bronze["line_no"].is_sorted():
        bronze = bronze.sort("line_no")
    checked = _type_and_check(bronze, day)
    flags = [name for _, name in _CHECKS[:-1]]
    rejected = checked.select(pl.any_horizontal(flags)).to_series()
    checked = checked.with_columns(ledger.duplicates(checked["trade_id"], rejected))
    rejected = rejected | checked["_duplicate"]

    accepted = checked if not rejected.any() else checked.filter(~rejected)
    silver = accepted.select(
        "trade_date",
        "instrument",
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
