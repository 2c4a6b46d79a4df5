"""The same feature code on 1-minute bars: real Binance klines, and 1 m bars rolled up from 1 s."""

from __future__ import annotations

import bisect
import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from streaming.recordings import read_recording
from streaming.venues.binance import Trade, parse_stream_frame
from trading_assets.lib.features import (
    FeatureConfig,
    bars_from_klines,
    compute_features,
    infer_bar_seconds,
    trades_frame,
)
from trading_assets.lib.lakehouse.bars import bars_from_trades, rollup_bars

KLINES = "BTCUSDT_1m_2019-10-15_2019-12-15.csv.gz"
MINUTE_WINDOWS = FeatureConfig(windows_s=(60, 300, 900, 3600))


@pytest.fixture(scope="module")
def klines(shared_data: Path) -> pl.DataFrame:
    return pl.read_csv(shared_data / "binance" / "klines" / "spot" / KLINES)


def test_klines_become_minute_bars_with_a_close_every_minute_across_gaps(klines):
    # Arrange
    bars = bars_from_klines(klines, "binance:btcusdt")

    # Act
    features = compute_features(bars, MINUTE_WINDOWS, ("price",))

    # Assert
    assert infer_bar_seconds(bars) == 60
    assert bars["instrument"].unique().to_list() == ["BINANCE:BTCUSDT"]
    first, last = klines["open_time"].min(), klines["open_time"].max()
    assert isinstance(first, int) and isinstance(last, int)
    minutes = (last - first) // 60_000 + 1
    assert features.height == minutes > klines.height  # maintenance gaps became empty bars
    assert features["event_timestamp"].diff().drop_nulls().unique().to_list() == [
        dt.timedelta(minutes=1)
    ]


def test_minute_features_match_the_definitions_on_real_klines(klines):
    # Arrange
    bars = bars_from_klines(klines, "BINANCE:BTCUSDT")
    times = klines["open_time"].to_list()
    closes = klines["close"].to_list()
    by_time = {t: row for t, row in zip(times, klines.iter_rows(named=True), strict=True)}

    def close_at(ms: int) -> float:  # close of the last kline opened before ms (carried forward)
        return closes[bisect.bisect_left(times, ms) - 1]

    # Act
    features = compute_features(bars, MINUTE_WINDOWS, ("price",), bar_s=60)

    # Assert
    sample = features.filter(pl.col("mom_3600s").is_not_null()).gather_every(997)
    assert sample.height > 80
    for row in sample.iter_rows(named=True):
        end = int(row["event_timestamp"].timestamp() * 1000)
        close = close_at(end)
        assert row["mom_3600s"] == pytest.approx(math.log(close / close_at(end - 3_600_000)))
        returns = [math.log(close_at(end - k * 60_000) / close_at(end - (k + 1) * 60_000))
                   for k in range(5)]  # fmt: skip
        assert row["rv_300s"] == pytest.approx(math.sqrt(math.fsum(r * r for r in returns)))
        minute = by_time.get(end - 60_000)
        if minute is not None and minute["volume"] > 0:
            typical = (minute["high"] + minute["low"] + minute["close"]) / 3
            assert row["vwap_60s"] == pytest.approx(typical, rel=1e-12)


def test_klines_without_the_taker_split_refuse_flow_and_sub_minute_windows(klines):
    # Arrange
    bars = bars_from_klines(klines.head(100), "BINANCE:BTCUSDT")

    # Act / Assert
    with pytest.raises(ValueError, match="taker buy/sell"):
        compute_features(bars, MINUTE_WINDOWS, ("price", "flow"))
    with pytest.raises(ValueError, match="not a multiple"):
        compute_features(bars, FeatureConfig(windows_s=(10, 60)), ("price",))


def test_minute_bars_rolled_up_from_seconds_give_the_same_minute_window_features(shared_data):
    # Arrange
    trades = [
        record
        for day in ("20240808", "20240809")
        for frame in read_recording(shared_data / "binance" / "ws" / f"btcusdt_{day}.txt.gz")
        if not frame.is_rest
        and isinstance(record := parse_stream_frame(frame.payload, frame.receive_ns), Trade)
    ]
    seconds = bars_from_trades(trades_frame("BINANCE:BTCUSDT", trades))
    minutes = rollup_bars(seconds, "1m")
    config = FeatureConfig(windows_s=(60, 120, 300))
    compared = [f"{kind}_{w}s" for kind in ("vwap", "mom", "flow_imb", "intensity")
                for w in config.windows_s]  # fmt: skip

    # Act
    from_seconds = compute_features(seconds, config, bar_s=1)
    from_minutes = compute_features(minutes, config, bar_s=60)

    # Assert
    joined = from_minutes.join(from_seconds, on=["instrument", "event_timestamp"], suffix="_1s")
    joined = joined.drop_nulls(compared)
    assert joined.height >= 5  # minute ends from 23:56 to 00:05, once each window warmed up
    for name in compared:
        for minute_value, second_value in zip(joined[name], joined[f"{name}_1s"], strict=True):
            assert minute_value == pytest.approx(second_value, rel=1e-12, abs=1e-15), name
