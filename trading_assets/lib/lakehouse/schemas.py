"""Iceberg schemas and partition specs of the trade lakehouse tables.

Every table is partitioned by identity(trade_date) × identity(symbol), so replacing one Dagster
partition is a file-level delete plus an append (no row rewrites), committed as one snapshot set.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

PRICE_PRECISION = 18
PRICE_SCALE = 8
# Quote quantities are price × qty: wider integer part than either factor.
QUOTE_PRECISION = 24

RAW_TRADE_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match")
"""Columns of data.binance.vision's spot daily trades CSV, in file order (no header row)."""


def _field(field_id: int, name: str, kind, required: bool = False) -> NestedField:
    return NestedField(field_id=field_id, name=name, field_type=kind, required=required)


def _partitioning_fields() -> list[NestedField]:
    return [_field(1, "trade_date", DateType(), True), _field(2, "instrument", StringType(), True)]


def _ingestion_fields(first_id: int) -> list[NestedField]:
    return [
        _field(first_id, "source", StringType()),
        _field(first_id + 1, "source_file", StringType()),
        _field(first_id + 2, "ingested_at", TimestamptzType()),
    ]


BRONZE_TRADES = Schema(
    *_partitioning_fields(),
    _field(3, "line_no", LongType(), True),
    *(_field(4 + i, name, StringType()) for i, name in enumerate(RAW_TRADE_COLUMNS)),
    *_ingestion_fields(11),
)

SILVER_TRADES = Schema(
    *_partitioning_fields(),
    _field(3, "trade_id", LongType(), True),
    _field(4, "price", DecimalType(PRICE_PRECISION, PRICE_SCALE), True),
    _field(5, "qty", DecimalType(PRICE_PRECISION, PRICE_SCALE), True),
    _field(6, "quote_qty", DecimalType(QUOTE_PRECISION, PRICE_SCALE), True),
    _field(7, "event_time", TimestamptzType(), True),
    _field(8, "is_buyer_maker", BooleanType(), True),
    _field(9, "is_best_match", BooleanType()),
    *_ingestion_fields(10),
)

QUARANTINE_TRADES = Schema(
    *_partitioning_fields(),
    _field(3, "line_no", LongType(), True),
    *(_field(4 + i, name, StringType()) for i, name in enumerate(RAW_TRADE_COLUMNS)),
    _field(11, "reason", StringType(), True),
    *_ingestion_fields(12),
)

_BAR_VALUES = (
    ("open", DoubleType()),
    ("high", DoubleType()),
    ("low", DoubleType()),
    ("close", DoubleType()),
    ("volume", DoubleType()),
    ("notional", DoubleType()),
    ("vwap", DoubleType()),
    ("buy_volume", DoubleType()),
    ("sell_volume", DoubleType()),
    ("trade_count", LongType()),
    ("first_trade_id", LongType()),
    ("last_trade_id", LongType()),
)

BARS = Schema(
    *_partitioning_fields(),
    _field(3, "bar_start", TimestamptzType(), True),
    *(_field(4 + i, name, kind, True) for i, (name, kind) in enumerate(_BAR_VALUES)),
)
"""Shared by bars_1s and bars_1m; notional = Σ price × qty, so vwap = notional / volume."""


@dataclass(frozen=True)
class TableDef:
    identifier: str
    schema: Schema

    @property
    def namespace(self) -> str:
        return self.identifier.split(".", 1)[0]

    def partition_spec(self) -> PartitionSpec:
        return PartitionSpec(
            PartitionField(1, 1000, IdentityTransform(), "trade_date"),
            PartitionField(2, 1001, IdentityTransform(), "instrument"),
        )


BRONZE_TRADES_TABLE = TableDef("bronze.trades", BRONZE_TRADES)
SILVER_TRADES_TABLE = TableDef("silver.trades", SILVER_TRADES)
QUARANTINE_TABLE = TableDef("silver.quarantine", QUARANTINE_TRADES)
BARS_1S_TABLE = TableDef("silver.bars_1s", BARS)
BARS_1M_TABLE = TableDef("silver.bars_1m", BARS)

ALL_TABLES = (
    BRONZE_TRADES_TABLE,
    SILVER_TRADES_TABLE,
    QUARANTINE_TABLE,
    BARS_1S_TABLE,
    BARS_1M_TABLE,
)
