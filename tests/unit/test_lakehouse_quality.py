"""Data-quality measurements: each one on clean data and on data that really has the defect."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl

from trading_assets.lib.lakehouse import quality

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def trades(ids: list[int], offsets_ms: list[int] | None = None, prices=None) -> pl.DataFrame:
    offsets_ms = offsets_ms or list(range(len(ids)))
    prices = prices or [Decimal("100")] * len(ids)
    return pl.DataFrame(
        {
            "trade_id": ids,
            "event_time": [START + dt.timedelta(milliseconds=m) for m in offsets_ms],
            "price": prices,
        },
        schema={
            "trade_id": pl.Int64,
            "event_time": pl.Datetime("us", "UTC"),
            "price": pl.Decimal(18, 8),
        },
    )


def test_gaps_are_counted_with_their_ranges():
    clean = quality.trade_id_gaps(pl.Series(range(10, 20)))
    gappy = quality.trade_id_gaps(pl.Series([10, 11, 15, 16, 20, 16]))

    assert clean == quality.GapReport(0, 0, [])
    assert gappy.missing_ids == 3 + 3
    assert gappy.gap_count == 2
    assert gappy.ranges == [(12, 14), (17, 19)]


def test_duplicates_count_extra_copies():
    assert quality.duplicate_trade_ids(trades([1, 2, 3])).count == 0

    report = quality.duplicate_trade_ids(trades([1, 2, 2, 3, 3, 3]))

    assert report.count == 3
    assert [dict(e) for e in report.examples] == [
        {"trade_id": 2, "copies": 2},
        {"trade_id": 3, "copies": 3},
    ]


def test_time_going_backwards_in_trade_id_order_is_found():
    assert quality.time_backwards(trades([1, 2, 3], [0, 0, 5])).count == 0

    # In id order the times are 0, 20, 10, 15: only trade 3 steps back (20 → 10).
    report = quality.time_backwards(trades([3, 1, 2, 4], [10, 0, 20, 15]))

    assert report.count == 1
    assert report.examples[0]["trade_id"] == 3


def test_a_single_bad_print_is_a_spike_and_its_neighbours_are_not():
    prices = [Decimal("100") + Decimal(i % 7) / 100 for i in range(300)]
    calm = trades(list(range(300)), prices=prices)
    prices[150] = Decimal("130")
    spiky = trades(list(range(300)), prices=prices)

    assert quality.price_spikes(calm).count == 0
    report = quality.price_spikes(spiky)
    assert report.count == 1
    assert report.examples[0]["trade_id"] == 150


def test_reconciliation_balances_only_when_every_row_is_accounted_for():
    assert quality.Reconciliation(100, 100, 97, 3).balanced
    assert not quality.Reconciliation(100, 100, 97, 2).balanced
    assert not quality.Reconciliation(101, 100, 97, 3).balanced
