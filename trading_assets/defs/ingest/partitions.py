"""Day × instrument partitions shared by every lakehouse asset and check, and by the sensors that
request runs of them (this module imports no asset, so a sensor may import it).

The instrument dimension's keys are instrument ids (``BINANCE:BTCUSDT``, ``COINBASE:BTC-USD``;
see :mod:`trading_assets.lib.instruments`), so a partition key reads ``2024-01-01|BINANCE:BTCUSDT``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from trading_assets.lib.settings import load_settings

DATE_DIMENSION = "date"
INSTRUMENT_DIMENSION = "instrument"


def build_trade_partitions() -> dg.MultiPartitionsDefinition:
    # end_offset=1: today is a partition too, the live one the sidecar's landed trades fill
    # during the day; where the venue publishes bulk files (Binance), the day's file replaces it
    # the next morning (see the daily schedule).
    settings = load_settings()
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: dg.DailyPartitionsDefinition(
                start_date=settings.history_start, end_offset=1
            ),
            INSTRUMENT_DIMENSION: dg.StaticPartitionsDefinition(list(settings.instruments)),
        }
    )


trade_partitions = build_trade_partitions()


def day_and_instrument(partition_key: str) -> tuple[dt.date, str]:
    """``"2024-01-01|BINANCE:BTCUSDT"`` (dimensions in name order: date, instrument) → (date,
    instrument)."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        keys = partition_key.keys_by_dimension
        day_text, instrument = keys[DATE_DIMENSION], keys[INSTRUMENT_DIMENSION]
    else:
        day_text, instrument = partition_key.split("|")
    return dt.date.fromisoformat(day_text), instrument


def partition_key(day: dt.date, instrument: str) -> dg.MultiPartitionKey:
    """The day × instrument partition of ``instrument`` on ``day``."""
    return dg.MultiPartitionKey({DATE_DIMENSION: day.isoformat(), INSTRUMENT_DIMENSION: instrument})


def trade_instruments() -> Sequence[str]:
    """The instrument dimension's keys in its order, the order a partition key range spans."""
    return trade_partitions.get_partitions_def_for_dimension(
        INSTRUMENT_DIMENSION
    ).get_partition_keys()


def run_partitions(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> list[tuple[str, dt.date, str]]:
    """(key, day, instrument) of each partition the run covers, in the run's order.

    One for most runs. A live pickup covers every instrument of a day that has a sealed segment
    waiting, as a partition key range, so that one run (one code-location load) serves them all;
    the assets and checks of the live job therefore work through each partition of the range.
    """
    return [(key, *day_and_instrument(key)) for key in context.partition_keys]
