"""Iceberg tables of the landed L2 books, partitioned like the trades (day × instrument).

bronze holds the landed lines as they were written (levels as their JSON text, one row per line,
with the segment file and line they came from). silver holds them typed and deduplicated, one
row per diff or snapshot, each side's levels as two lists of integers in 1e-8 units (prices,
quantities; a diff's quantity 0 removes the level), so a day is columnar, compressed, and read
back without parsing a decimal. Times are integer ns (``event_ns`` the venue's, ``receive_ns``
and ``taken_ns`` the sidecar's): Iceberg's timestamps stop at µs.
"""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import (
    DateType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from trading_assets.lib.lakehouse.schemas import TableDef


def _field(field_id: int, name: str, kind, required: bool = False) -> NestedField:
    return NestedField(field_id=field_id, name=name, field_type=kind, required=required)


def _keys() -> list[NestedField]:
    return [_field(1, "trade_date", DateType(), True), _field(2, "instrument", StringType(), True)]


def _levels(first_id: int) -> list[NestedField]:
    """Four list columns: bid prices, bid quantities, ask prices, ask quantities."""
    names = ("bid_prices", "bid_qtys", "ask_prices", "ask_qtys")
    return [
        _field(first_id + i, name, ListType(100 + first_id + i, LongType(), True), True)
        for i, name in enumerate(names)
    ]


BRONZE_BOOK_UPDATES = Schema(
    *_keys(),
    _field(3, "segment", LongType(), True),
    _field(4, "first_update_id", LongType(), True),
    _field(5, "final_update_id", LongType(), True),
    _field(6, "event_ns", LongType(), True),
    _field(7, "receive_ns", LongType(), True),
    _field(8, "bids", StringType(), True),
    _field(9, "asks", StringType(), True),
    _field(10, "source_file", StringType(), True),
    _field(11, "line_no", LongType(), True),
    _field(12, "ingested_at", TimestamptzType(), True),
)

BRONZE_BOOK_SNAPSHOTS = Schema(
    *_keys(),
    _field(3, "segment", LongType(), True),
    _field(4, "kind", StringType(), True),
    _field(5, "last_update_id", LongType(), True),
    _field(6, "taken_ns", LongType(), True),
    _field(7, "gap", StringType()),
    _field(8, "bids", StringType(), True),
    _field(9, "asks", StringType(), True),
    _field(10, "source_file", StringType(), True),
    _field(11, "line_no", LongType(), True),
    _field(12, "ingested_at", TimestamptzType(), True),
    _field(13, "lost_ns", LongType()),
)

SILVER_BOOK_UPDATES = Schema(
    *_keys(),
    _field(3, "segment", LongType(), True),
    _field(4, "first_update_id", LongType(), True),
    _field(5, "final_update_id", LongType(), True),
    _field(6, "event_ns", LongType(), True),
    _field(7, "receive_ns", LongType(), True),
    *_levels(8),
)

SILVER_BOOK_SNAPSHOTS = Schema(
    *_keys(),
    _field(3, "segment", LongType(), True),
    _field(4, "kind", StringType(), True),
    _field(5, "last_update_id", LongType(), True),
    _field(6, "taken_ns", LongType(), True),
    _field(7, "gap", StringType()),
    *_levels(8),
    _field(12, "lost_ns", LongType()),
)

BRONZE_BOOK_UPDATES_TABLE = TableDef("bronze.book_updates", BRONZE_BOOK_UPDATES)
BRONZE_BOOK_SNAPSHOTS_TABLE = TableDef("bronze.book_snapshots", BRONZE_BOOK_SNAPSHOTS)
SILVER_BOOK_UPDATES_TABLE = TableDef("silver.book_updates", SILVER_BOOK_UPDATES)
SILVER_BOOK_SNAPSHOTS_TABLE = TableDef("silver.book_snapshots", SILVER_BOOK_SNAPSHOTS)
LEVEL_COLUMNS = ("bid_prices", "bid_qtys", "ask_prices", "ask_qtys")
