"""Bars against an independent row-by-row computation in exact decimals."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import polars as pl
import pytest

from trading_assets.lib.lakehouse.bars import SILVER_BAR_COLUMNS, bars_from_trades, rollup_bars
from trading_assets.lib.lakehouse.silver import SILVER_COLUMNS

DAY = dt.date(2024, 3, 1)
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def synthetic_trades(count: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    trades, at = [], START
    for trade_id in range(100, 100 + count):
        at += dt.timedelta(microseconds=rng.randrange(0, 900_000))
        trades.append(
            {
                "trade_date": DAY,
                "instrument": "BINANCE:BTCUSDT",
                "trade_id": trade_id,
                "price": Decimal(rng.randrange(6_000_000, 6_010_000)) / 100,
                "qty": Decimal(rng.randrange(1, 500_000)) / 100_000_000 * 1000,
                "event_time": at,
                "is_buyer_maker": rng.random() < 0.5,
            }
        )
    return trades


def to_frame(trades: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        trades,
        schema={
            "trade_date": pl.Date,
            "instrument": pl.String,
            "trade_id": pl.Int64,
            "price": pl.Decimal(18, 8),
            "qty": pl.Decimal(18, 8),
            "event_time": pl.Datetime("us", "UTC"),
            "is_buyer_maker": pl.Boolean,
        },
    )


def expected_bars(trades: list[dict], seconds: int) -> dict[dt.datetime, dict]:
    buckets: dict[dt.datetime, list[dict]] = defaultdict(list)
    for trade in sorted(trades, key=lambda t: t["trade_id"]):
        offset = int((trade["event_time"] - START).total_seconds()) // seconds * seconds
        buckets[START + dt.timedelta(seconds=offset)].append(trade)
    bars = {}
    for start, group in buckets.items():
        volume = sum(t["qty"] for t in group)
        notional = sum(t["price"] * t["qty"] for t in group)
        bars[start] = {
            "open": group[0]["price"],
            "high": max(t["price"] for t in group),
            "low": min(t["price"] for t in group),
            "close": group[-1]["price"],
            "volume": volume,
            "vwap": notional / volume,
            "buy_volume": sum(t["qty"] for t in group if not t["is_buyer_maker"]),
            "sell_volume": sum(t["qty"] for t in group if t["is_buyer_maker"]),
            "trade_count": len(group),
            "first_trade_id": group[0]["trade_id"],
            "last_trade_id": group[-1]["trade_id"],
        }
    return bars


def assert_bars_match(actual: pl.DataFrame, expected: dict[dt.datetime, dict]) -> None:
    assert actual["bar_start"].to_list() == sorted(expected)
    for row in actual.iter_rows(named=True):
        want = expected[row["bar_start"]]
        for column in ("trade_count", "first_trade_id", "last_trade_id"):
            assert row[column] == want[column], column
        for column in ("open", "high", "low", "close", "volume", "vwap"):
            assert row[column] == pytest.approx(float(want[column]), rel=1e-12), column
        for column in ("buy_volume", "sell_volume"):
            assert row[column] == pytest.approx(float(want[column]), rel=1e-12, abs=1e-12)


def test_one_second_bars_match_an_independent_computation():
    trades = synthetic_trades(3_000)
    shuffled = to_frame(trades).sample(fraction=1.0, shuffle=True, seed=1)

    bars = bars_from_trades(shuffled, "1s")

    assert_bars_match(bars, expected_bars(trades, 1))
    assert bars["trade_count"].sum() == len(trades)


def test_bars_need_only_the_silver_bar_columns_and_silver_holds_each_of_them():
    # Arrange: silver rows carry more columns than the bars read
    trades = synthetic_trades(500, seed=4)
    silver = to_frame(trades).with_columns(pl.lit("binance.live.trades").alias("source"))

    # Act: what bars_1s and the sidecar's silver fallback read of silver, and nothing else
    bars = bars_from_trades(silver.select(SILVER_BAR_COLUMNS), "1s")

    # Assert
    assert set(SILVER_BAR_COLUMNS) <= set(SILVER_COLUMNS)
    assert_bars_match(bars, expected_bars(trades, 1))


def test_minute_rollup_of_second_bars_equals_minute_bars_from_trades():
    trades = synthetic_trades(3_000, seed=9)
    seconds = bars_from_trades(to_frame(trades), "1s")

    minutes = rollup_bars(seconds, "1m")

    assert_bars_match(minutes, expected_bars(trades, 60))


def test_taker_side_splits_volume_exactly():
    trades = synthetic_trades(500, seed=5)

    bars = bars_from_trades(to_frame(trades), "1s")

    total_buy = sum(float(t["qty"]) for t in trades if not t["is_buyer_maker"])
    assert bars["buy_volume"].sum() == pytest.approx(total_buy, rel=1e-12)
    mismatch = (bars["buy_volume"] + bars["sell_volume"] - bars["volume"]).abs().to_list()
    assert max(mismatch) < 1e-9
