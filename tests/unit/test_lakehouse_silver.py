"""Silver typing, validation, quarantine reasons and deduplication on hand-written bulk rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl

from trading_assets.lib.lakehouse.bronze import count_csv_rows, parse_bronze
from trading_assets.lib.lakehouse.silver import Reason, reason_counts, split_silver

DAY = dt.date(2024, 3, 1)
DAY_MS = 1_709_251_200_000  # 2024-03-01T00:00:00Z in ms
NOW = dt.datetime(2024, 3, 2, 4, 0, tzinfo=dt.UTC)


def bronze_of(lines: list[str], day: dt.date = DAY) -> pl.DataFrame:
    csv = ("\n".join(lines) + "\n").encode()
    return parse_bronze(csv, day, "BTCUSDT", "BTCUSDT-trades-2024-03-01.zip", NOW)


def reasons_by_line(quarantine: pl.DataFrame) -> dict[int, str]:
    return dict(zip(quarantine["line_no"], quarantine["reason"], strict=True))


def test_prices_and_quantities_are_exact_decimals():
    bronze = bronze_of([f"7,61837.63000001,0.10000001,6183.76918376,{DAY_MS + 5},True,True"])

    silver = split_silver(bronze, DAY).silver

    row = silver.row(0, named=True)
    assert row["trade_id"] == 7
    assert row["price"] == Decimal("61837.63000001")
    assert row["qty"] == Decimal("0.10000001")
    assert row["quote_qty"] == Decimal("6183.76918376")
    assert row["is_buyer_maker"] is True
    assert row["event_time"] == dt.datetime(2024, 3, 1, 0, 0, 0, 5000, tzinfo=dt.UTC)


def test_milliseconds_and_microseconds_are_told_apart():
    instant_us = (DAY_MS + 1234) * 1000 + 567
    bronze = bronze_of(
        [
            f"1,10.0,1.0,10.0,{DAY_MS + 1234},False,True",  # Binance before 2025: ms
            f"2,10.0,1.0,10.0,{instant_us},False,True",  # from 2025: µs
        ]
    )

    silver = split_silver(bronze, DAY).silver

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    expected_ms = epoch + dt.timedelta(milliseconds=DAY_MS + 1234)
    expected_us = epoch + dt.timedelta(microseconds=instant_us)
    assert silver["event_time"].to_list() == [expected_ms, expected_us]


def test_each_defect_is_quarantined_with_its_reason():
    bronze = bronze_of(
        [
            f"1,10.0,1.0,10.0,{DAY_MS},True,True",  # good
            f"x2,10.0,1.0,10.0,{DAY_MS},True,True",
            f"3,abc,1.0,10.0,{DAY_MS},True,True",
            f"4,0.00000000,1.0,0,{DAY_MS},True,True",
            f"5,10.0,-1.0,-10.0,{DAY_MS},True,True",
            "6,10.0,1.0,10.0,yesterday,True,True",
            f"7,10.0,1.0,10.0,{DAY_MS - 1},True,True",
            f"8,10.0,1.0,10.0,{DAY_MS},maybe,True",
            f"9,10.123456789,1.0,10.0,{DAY_MS},True,True",  # would need rounding
            f"10,1e-9,1.0,10.0,{DAY_MS},True,True",
        ]
    )

    split = split_silver(bronze, DAY)

    assert split.silver["trade_id"].to_list() == [1]
    assert reasons_by_line(split.quarantine) == {
        2: Reason.UNPARSEABLE_ID,
        3: Reason.UNPARSEABLE_PRICE,
        4: Reason.NONPOSITIVE_PRICE,
        5: Reason.NONPOSITIVE_QTY,
        6: Reason.UNPARSEABLE_TIME,
        7: Reason.TIME_OUTSIDE_PARTITION,
        8: Reason.UNPARSEABLE_IS_BUYER_MAKER,
        9: Reason.UNPARSEABLE_PRICE,
        10: Reason.UNPARSEABLE_PRICE,
    }
    assert split.quarantine.filter(pl.col("line_no") == 3)["price"].item() == "abc"


def test_a_row_with_several_defects_lists_them_all():
    bronze = bronze_of([f"1,-5,0,0,{DAY_MS + 86_400_000},True,True"])

    quarantine = split_silver(bronze, DAY).quarantine

    assert quarantine["reason"].item() == ";".join(
        [Reason.NONPOSITIVE_PRICE, Reason.NONPOSITIVE_QTY, Reason.TIME_OUTSIDE_PARTITION]
    )


def test_later_copies_of_a_trade_id_are_quarantined_not_dropped():
    bronze = bronze_of(
        [
            f"1,10.0,1.0,10.0,{DAY_MS},True,True",
            f"2,11.0,1.0,11.0,{DAY_MS + 1},False,True",
            f"2,11.0,1.0,11.0,{DAY_MS + 1},False,True",  # exact copy
            f"3,abc,1.0,12.0,{DAY_MS + 2},False,True",  # invalid first sighting of id 3
            f"3,12.0,1.0,12.0,{DAY_MS + 2},False,True",  # valid: the one that counts
            f"2,99.0,1.0,99.0,{DAY_MS + 3},False,True",  # conflicting copy
        ]
    )

    split = split_silver(bronze, DAY)

    assert split.silver["trade_id"].to_list() == [1, 2, 3]
    assert split.silver.filter(pl.col("trade_id") == 2)["price"].item() == Decimal("11")
    assert reasons_by_line(split.quarantine) == {
        3: Reason.DUPLICATE_TRADE_ID,
        4: Reason.UNPARSEABLE_PRICE,
        6: Reason.DUPLICATE_TRADE_ID,
    }
    assert reason_counts(split.quarantine) == {
        Reason.DUPLICATE_TRADE_ID: 2,
        Reason.UNPARSEABLE_PRICE: 1,
    }


def test_every_bronze_row_lands_in_exactly_one_of_silver_or_quarantine():
    lines = [f"{i},{10 + i % 3}.5,0.1,1.05,{DAY_MS + i},{i % 2 == 0},True" for i in range(1, 200)]
    lines[10] = lines[9]  # a duplicate
    lines[20] = "21,,,,,,"  # an empty row
    bronze = bronze_of(lines)

    split = split_silver(bronze, DAY)

    assert count_csv_rows(("\n".join(lines) + "\n").encode()) == 199
    assert split.silver.height + split.quarantine.height == bronze.height == 199
    assert split.quarantine.height == 2


def test_unsorted_ids_come_out_sorted_by_trade_id():
    bronze = bronze_of(
        [
            f"3,10.0,1.0,10.0,{DAY_MS + 3},True,True",
            f"1,10.0,1.0,10.0,{DAY_MS + 1},True,True",
            f"2,10.0,1.0,10.0,{DAY_MS + 2},True,True",
        ]
    )

    silver = split_silver(bronze, DAY).silver

    assert silver["trade_id"].to_list() == [1, 2, 3]
