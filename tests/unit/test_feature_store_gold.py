"""Gold features across midnight and the atomic per-partition parquet export."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trading_assets.lib.feature_store import offline
from trading_assets.lib.feature_store.gold import (
    MissingBarsError,
    build_gold_features,
    day_bounds,
    day_features,
    gold_table,
    select_warmup,
)
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG
from trading_assets.lib.lakehouse.bars import BAR_COLUMNS
from trading_assets.resources import IcebergCatalogResource

DAY1 = dt.date(2024, 3, 1)
DAY2 = dt.date(2024, 3, 2)
MAX_WINDOW = max(FEATURE_CONFIG.windows_s)


def synthetic_bars(day: dt.date, seconds: list[int], seed: int) -> pl.DataFrame:
    """1 s bars at the given seconds of the day (sparse, like a quiet market)."""
    rng = random.Random(seed)
    start, _ = day_bounds(day)
    rows = []
    price = 100.0
    for i, s in enumerate(sorted(seconds)):
        price *= 1 + rng.uniform(-0.001, 0.001)
        qty, buy = round(rng.uniform(0.01, 2), 8), rng.random() < 0.5
        rows.append(
            {
                "trade_date": day,
                "instrument": "BINANCE:BTCUSDT",
                "bar_start": start + dt.timedelta(seconds=s),
                "open": price,
                "high": price,
                "low": price,
                "close": price,
                "volume": qty,
                "notional": round(qty * price, 8),
                "vwap": price,
                "buy_volume": qty if buy else 0.0,
                "sell_volume": 0.0 if buy else qty,
                "trade_count": 1,
                "first_trade_id": i,
                "last_trade_id": i,
            }
        )
    frame = pl.DataFrame(rows).select(BAR_COLUMNS)
    return frame.with_columns(pl.col("bar_start").cast(pl.Datetime("us", "UTC")))


@pytest.fixture(scope="module")
def two_days() -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(3)
    # Quiet end of day 1 (no bar exactly 15 min before midnight), busy start of day 2.
    day1 = sorted(rng.sample(range(80_000, 86_400), 1_500))
    day1 = [s for s in day1 if s != 86_400 - MAX_WINDOW]
    day2 = sorted(rng.sample(range(0, 3_600), 2_500))
    return synthetic_bars(DAY1, day1, 1), synthetic_bars(DAY2, day2, 2)


def test_warmed_up_day_equals_features_computed_over_both_days(two_days):
    day1, day2 = two_days
    start, end = day_bounds(DAY2)
    continuous = day_features(pl.concat([day1, day2]), None, DAY2)

    warmed = day_features(day2, select_warmup(day1, DAY2, MAX_WINDOW), DAY2)

    assert warmed.height == continuous.height > 0
    assert warmed["event_timestamp"].min() > start
    assert warmed["event_timestamp"].max() <= end
    assert warmed.select(pl.col("mom_900s").first()).item() is not None
    assert_frame_equal(warmed, continuous)


def test_without_the_previous_day_the_first_windows_start_cold(two_days):
    _, day2 = two_days

    cold = day_features(day2, None, DAY2)

    first_bar = day2["bar_start"].min()
    early = cold.filter(pl.col("event_timestamp") <= first_bar + dt.timedelta(seconds=MAX_WINDOW))
    late = cold.filter(pl.col("event_timestamp") > first_bar + dt.timedelta(seconds=MAX_WINDOW))
    assert early["mom_900s"].null_count() == early.height > 0
    assert late["mom_900s"].null_count() == 0


def test_warmup_starts_the_grid_at_or_before_the_longest_window(two_days):
    day1, _ = two_days
    start, _ = day_bounds(DAY2)

    warmup = select_warmup(day1, DAY2, MAX_WINDOW)

    threshold = start - dt.timedelta(seconds=MAX_WINDOW)
    assert warmup["bar_start"].min() < threshold
    assert warmup.filter(pl.col("bar_start") < threshold).height == 1
    assert (
        warmup.filter(pl.col("bar_start") >= threshold).height
        == day1.filter(pl.col("bar_start") >= threshold).height
    )


def test_export_replaces_a_partition_file_whole(tmp_path, two_days):
    _, day2 = two_days
    features = day_features(day2, None, DAY2)
    directory = str(tmp_path / "features")
    offline.export_partition(features, directory, DAY2, "BINANCE:BTCUSDT")

    offline.export_partition(features.head(10), directory, DAY2, "BINANCE:BTCUSDT")
    offline.export_partition(features.head(3), directory, DAY1, "BINANCE:BTCUSDT")

    files = offline.list_partitions(directory)
    assert [offline.parse_partition_name(f) for f in files] == [
        (DAY1, "BINANCE:BTCUSDT"),
        (DAY2, "BINANCE:BTCUSDT"),
    ]
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [
        "2024-03-01_BINANCE:BTCUSDT.parquet",
        "2024-03-02_BINANCE:BTCUSDT.parquet",
    ]
    assert offline.read_offline(directory).height == 13
    assert offline.newest_event_time(directory) == features["event_timestamp"][9]


def test_exporting_an_empty_partition_removes_its_file(tmp_path, two_days):
    _, day2 = two_days
    features = day_features(day2, None, DAY2)
    directory = str(tmp_path / "features")
    offline.export_partition(features, directory, DAY2, "BINANCE:BTCUSDT")

    result = offline.export_partition(features.clear(), directory, DAY2, "BINANCE:BTCUSDT")

    assert result.rows == 0
    assert offline.list_partitions(directory) == []
    assert offline.newest_event_time(directory) is None


def test_a_day_without_bars_fails_clearly_instead_of_writing_an_empty_partition(tmp_path):
    lake = IcebergCatalogResource.local(tmp_path).lakehouse()

    with pytest.raises(MissingBarsError, match="materialize bars_1s first"):
        build_gold_features(lake, "BINANCE:BTCUSDT", dt.date(2024, 3, 1))

    assert not lake.catalog.table_exists(gold_table().identifier)
