"""Partition replacement on a real sqlite-backed Iceberg catalog: idempotent and crash-safe."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from pyiceberg.table import Table

from trading_assets.lib.lakehouse.pipeline import to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import (
    count_partition,
    ensure_table,
    open_catalog,
    read_partition,
    replace_partition,
)

DAY = dt.date(2024, 3, 1)
BTC, ETH = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"


@pytest.fixture()
def bars_table(tmp_path: Path) -> Table:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    catalog = open_catalog(
        "test",
        {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db", "warehouse": warehouse.as_uri()},
    )
    return ensure_table(catalog, BARS_1S_TABLE)


def bars(table: Table, day: dt.date, symbol: str, count: int, first_id: int = 0) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    frame = pl.DataFrame(
        {
            "trade_date": [day] * count,
            "instrument": [symbol] * count,
            "bar_start": [start + dt.timedelta(seconds=i) for i in range(count)],
            **{c: [1.0] * count for c in ("open", "high", "low", "close", "volume")},
            **{c: [1.0] * count for c in ("notional", "vwap", "buy_volume", "sell_volume")},
            "trade_count": [1] * count,
            "first_trade_id": list(range(first_id, first_id + count)),
            "last_trade_id": list(range(first_id, first_id + count)),
        }
    )
    return to_iceberg_arrow(frame, table.schema())


def test_replacing_a_partition_twice_keeps_one_copy(bars_table):
    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 50)])

    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 50)])

    assert count_partition(bars_table, DAY, BTC) == 50
    assert read_partition(bars_table, DAY, BTC).height == 50


def test_replacing_one_partition_leaves_the_others_alone(bars_table):
    other_day = DAY + dt.timedelta(days=1)
    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 10)])
    replace_partition(bars_table, DAY, ETH, [bars(bars_table, DAY, ETH, 20)])
    replace_partition(bars_table, other_day, BTC, [bars(bars_table, other_day, BTC, 30)])

    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 5)])

    assert count_partition(bars_table, DAY, BTC) == 5
    assert count_partition(bars_table, DAY, ETH) == 20
    assert count_partition(bars_table, other_day, BTC) == 30


def test_a_failure_midway_leaves_the_previous_partition_intact(bars_table):
    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 40)])
    snapshots_before = len(bars_table.refresh().snapshots())

    def chunks_that_fail() -> Iterator[pa.Table]:
        # The old rows are staged for deletion and the first new file is written by now.
        yield bars(bars_table, DAY, BTC, 25, first_id=1000)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_partition(bars_table, DAY, BTC, chunks_that_fail())

    after_crash = read_partition(bars_table, DAY, BTC)
    assert after_crash.height == 40
    assert max(after_crash["first_trade_id"].to_list()) < 1000
    assert len(bars_table.refresh().snapshots()) == snapshots_before

    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 25, 1000)])

    rerun = read_partition(bars_table, DAY, BTC)
    assert rerun.height == 25
    assert rerun["first_trade_id"].min() == 1000


def test_rows_of_another_partition_are_refused(bars_table):
    wrong = bars(bars_table, DAY, ETH, 3)

    with pytest.raises(ValueError, match="instrument"):
        replace_partition(bars_table, DAY, BTC, [wrong])

    assert count_partition(bars_table, DAY, BTC) == 0


def test_a_filtered_read_returns_only_the_matching_rows(bars_table):
    replace_partition(bars_table, DAY, BTC, [bars(bars_table, DAY, BTC, 50)])
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    inside = pl.col("bar_start").is_between(
        start + dt.timedelta(seconds=10), start + dt.timedelta(seconds=19)
    )

    sliced = read_partition(bars_table, DAY, BTC, ("first_trade_id",), where=inside)

    assert sliced.columns == ["first_trade_id"]
    assert sliced["first_trade_id"].to_list() == list(range(10, 20))
