"""Day × symbol partitions shared by every lakehouse asset and check."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from trading_assets.lib.settings import history_start_date, trading_symbols

DATE_DIMENSION = "date"
SYMBOL_DIMENSION = "symbol"


def build_trade_partitions() -> dg.MultiPartitionsDefinition:
    # end_offset=1: today is a partition too, the live one the sidecar's landed trades fill
    # during the day; Binance's bulk file replaces it the next morning (see the daily schedule).
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: dg.DailyPartitionsDefinition(
                start_date=history_start_date(), end_offset=1
            ),
            SYMBOL_DIMENSION: dg.StaticPartitionsDefinition(trading_symbols()),
        }
    )


trade_partitions = build_trade_partitions()


def day_and_symbol(partition_key: str) -> tuple[dt.date, str]:
    """``"2024-01-01|BTCUSDT"`` (dimensions in name order: date, symbol) → (date, symbol)."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        keys = partition_key.keys_by_dimension
        day_text, symbol = keys[DATE_DIMENSION], keys[SYMBOL_DIMENSION]
    else:
        day_text, symbol = partition_key.split("|")
    return dt.date.fromisoformat(day_text), symbol
