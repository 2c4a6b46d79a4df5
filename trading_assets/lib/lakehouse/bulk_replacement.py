"""When a bulk day may replace the bronze rows a partition already holds.

The bulk file is authoritative and replaces the day's bronze rows as a whole, live rows included.
That is safe only if it holds every trade those rows hold: a shorter file (a venue export cut off,
a partial republish) would otherwise silently drop trades that were already ingested live.

The rule: before the replacement, each distinct trade of the day the partition holds (a row with
an integer id and a time inside the day; the trades silver would keep) must be in the incoming
file too, as a trade of that day. Rows beyond that may go: repeated trade ids (the live feed's
reconnect overlap, a gap-fill fetching a trade again) and rows with no usable id or time, which
silver would only have quarantined. Anything else refuses the replacement
(:class:`BulkWouldDropTradesError`), naming the file, the partition and the missing trade ids,
and bronze keeps what it had. ``replace_missing_trades`` overrides it for a file known to be right
(live rows from a wrong feed): the live rows' landing segments are not touched by a replacement.

The check reads the partition's ids and times only when it could fail: when the partition holds
live rows, or more rows than the incoming file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
from pyiceberg.table import Table

from trading_assets.lib.lakehouse.landing_layout import live_source
from trading_assets.lib.lakehouse.silver import day_bounds_us, epoch_to_microseconds
from trading_assets.lib.lakehouse.tables import count_partition, read_partition

MISSING_IDS_SHOWN = 5


class BulkWouldDropTradesError(ValueError):
    """The bulk file lacks trades bronze already holds for the day; nothing was replaced."""


@dataclass(frozen=True)
class Replacement:
    """What replacing a partition with a bulk day does to its rows, and why that is fine."""

    rows_before: int
    rows_after: int
    live_rows_before: int
    missing_trades: int  # trades of the day only the old rows held (0 unless overridden)
    note: str  # why the partition may shrink, or "" when it does not


def day_trade_ids(frame: pl.DataFrame, day: dt.date) -> pl.Series:
    """Distinct trade ids of the rows with an integer id and a time inside ``day`` (sorted)."""
    start_us, end_us = day_bounds_us(day)
    time_us = epoch_to_microseconds(pl.col("time").str.to_integer(strict=False))
    typed = frame.select(
        pl.col("id").str.to_integer(strict=False).alias("id"), time_us.alias("time_us")
    )
    in_day = pl.col("id").is_not_null() & pl.col("time_us").is_between(start_us, end_us - 1)
    return typed.filter(in_day).get_column("id").unique().sort()


class IncomingTrades:
    """What a bulk day holds, as the replacement check needs it: its row count and its distinct
    trade ids of the day. Built from the whole day's bronze rows (:meth:`of`, ids worked out only
    if the check needs them), or chunk by chunk (:meth:`add`, each chunk's ids kept, not its
    rows)."""

    def __init__(self, day: dt.date) -> None:
        self.day = day
        self.rows = 0
        self._ids: list[pl.Series] = []
        self._whole: pl.DataFrame | None = None

    @classmethod
    def of(cls, bronze: pl.DataFrame, day: dt.date) -> IncomingTrades:
        incoming = cls(day)
        incoming.rows, incoming._whole = bronze.height, bronze
        return incoming

    def add(self, bronze: pl.DataFrame) -> None:
        self.rows += bronze.height
        self._ids.append(day_trade_ids(bronze, self.day))

    @property
    def trade_ids(self) -> pl.Series:
        if self._whole is not None:
            self._ids.append(day_trade_ids(self._whole, self.day))
            self._whole = None
        if not self._ids:
            return pl.Series("id", [], dtype=pl.Int64)
        return pl.concat(self._ids).unique().sort()


def missing_trade_ids(held: pl.DataFrame, incoming_ids: pl.Series, day: dt.date) -> pl.Series:
    """Trade ids of the day the bronze rows ``held`` have and ``incoming_ids`` lack (sorted)."""
    held_ids = day_trade_ids(held, day)
    return held_ids.filter(~held_ids.is_in(incoming_ids.implode()))


def check_replacement(
    table: Table,
    day: dt.date,
    symbol: str,
    incoming: IncomingTrades,
    file: str,
    *,
    replace_missing_trades: bool = False,
) -> Replacement:
    """May the bulk day ``incoming`` (from ``file``) replace the partition's rows?"""
    rows_before = count_partition(table, day, symbol)
    live = live_source(symbol)
    if rows_before == 0:
        return Replacement(0, incoming.rows, 0, 0, "")
    # Live rows are read in any case (few files to open: bulk-only files are skipped by their
    # statistics); all rows only when the file is shorter than the partition.
    where = None if incoming.rows < rows_before else pl.col("source") == live
    held = read_partition(table, day, symbol, ("id", "time", "source"), where)
    if held.is_empty():
        return Replacement(rows_before, incoming.rows, 0, 0, "")
    live_rows = held.filter(pl.col("source") == live).height
    missing = missing_trade_ids(held, incoming.trade_ids, day)
    if missing.len() and not replace_missing_trades:
        raise BulkWouldDropTradesError(
            _refusal(file, table, day, symbol, rows_before, live_rows, incoming.rows, missing)
        )
    return Replacement(
        rows_before,
        incoming.rows,
        live_rows,
        missing.len(),
        _why_fewer(rows_before, incoming.rows, missing.len()),
    )


def _refusal(
    file: str,
    table: Table,
    day: dt.date,
    symbol: str,
    rows_before: int,
    live_rows: int,
    rows_after: int,
    missing: pl.Series,
) -> str:
    shown = ", ".join(str(trade_id) for trade_id in missing.head(MISSING_IDS_SHOWN))
    more = (
        f" and {missing.len() - MISSING_IDS_SHOWN:,} more"
        if missing.len() > MISSING_IDS_SHOWN
        else ""
    )
    name = ".".join(table.name()[-2:])
    return (
        f"{file}: refusing to replace {name} {symbol} {day}: it holds {rows_before:,} rows "
        f"({live_rows:,} landed live) with {missing.len():,} trades of the day this file "
        f"({rows_after:,} rows) lacks (trade ids {shown}{more}); {name} keeps its rows. "
        "Set replace_missing_trades to replace them anyway."
    )


def _why_fewer(rows_before: int, rows_after: int, missing: int) -> str:
    if missing:
        return (
            f"replaced although {missing:,} trades of the day are not in the file "
            "(replace_missing_trades); their landing segments are untouched"
        )
    if rows_after >= rows_before:
        return ""
    return (
        f"{rows_before - rows_after:,} fewer rows than before: every trade of the day they held "
        "is in the file; the others were repeated trade ids or had no usable id or time"
    )
