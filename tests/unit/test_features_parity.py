"""Batch and live features agree at every second, on real sessions and over hours of synthetic tape.

Batch path: trades → silver-like frame → ``bars_from_trades`` → ``compute_features`` (+ book frame).
Live path: the same records replayed one by one in receive order through ``LiveFeatures``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from streaming.recordings import read_recording
from streaming.simulator.binance.bulk_format import format_e8
from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.synthetic_book import book_ticker_json, state_after
from streaming.venues.binance import BookTicker, Trade, parse_book_ticker, parse_stream_frame
from trading_assets.lib.features import (
    ALL_GROUPS,
    DEFAULT_CONFIG,
    FeatureConfig,
    FeatureRow,
    LiveFeatures,
    book_frame,
    compute_features,
    feature_names,
    trades_frame,
)
from trading_assets.lib.lakehouse.bars import bars_from_trades

SESSION_DAYS = ("20240808", "20240809")
SHORT_WINDOWS = FeatureConfig(windows_s=(1, 7, 30, 240))  # all warm up within the 11 minutes
RELATIVE_TOLERANCE = 1e-9

Record = Trade | BookTicker


def recorded_session(root: Path, symbol: str) -> list[Record]:
    """Trades and book tickers of both day files of a recorded session, in receive order."""
    records: list[Record] = []
    for day in SESSION_DAYS:
        for frame in read_recording(root / "binance" / "ws" / f"{symbol.lower()}_{day}.txt.gz"):
            if frame.is_rest:
                continue
            record = parse_stream_frame(frame.payload, frame.receive_ns)
            if isinstance(record, Trade | BookTicker):
                records.append(record)
    return records


def batch_features(symbol: str, records: list[Record], config: FeatureConfig) -> pl.DataFrame:
    trades = [r for r in records if isinstance(r, Trade)]
    tickers = [r for r in records if isinstance(r, BookTicker)]
    bars = bars_from_trades(trades_frame(symbol, trades))
    return compute_features(bars, config, ALL_GROUPS, book=book_frame(symbol, tickers), bar_s=1)


def live_features(symbol: str, records: list[Record], config: FeatureConfig) -> list[FeatureRow]:
    live = LiveFeatures(symbol, config, ALL_GROUPS)
    rows: list[FeatureRow] = []
    for record in records:
        if isinstance(record, Trade):
            rows += live.on_trade(record)
        else:
            rows += live.on_book_ticker(record)
    return rows + live.flush()


def relative_difference(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def mismatches(batch: pl.DataFrame, live: list[FeatureRow], names: list[str]) -> list[tuple]:
    """(feature, timestamp µs, batch value, live value) wherever they disagree."""
    found = []
    stamps = batch["event_timestamp"].dt.epoch("us").to_list()
    for name in names:
        for stamp, b, row in zip(stamps, batch[name].to_list(), live, strict=True):
            value = row.values[name]
            if (b is None) != (value is None) or (
                b is not None and value is not None and relative_difference(b, value) > 1e-9
            ):
                found.append((name, stamp, b, value))
    return found


@pytest.fixture(scope="module", params=["BTCUSDT", "ETHUSDT"])
def session(request, shared_data: Path) -> tuple[str, list[Record]]:
    return request.param, recorded_session(shared_data, request.param)


@pytest.mark.parametrize("config", [DEFAULT_CONFIG, SHORT_WINDOWS], ids=["default", "short"])
def test_recorded_session_gives_the_same_features_live_and_batch(session, config):
    # Arrange
    symbol, records = session
    names = feature_names(config, ALL_GROUPS)

    # Act
    batch = batch_features(symbol, records, config)
    live = live_features(symbol, records, config)

    # Assert
    assert [r.event_timestamp_us for r in live] == batch["event_timestamp"].dt.epoch("us").to_list()
    assert batch.height == 651  # 23:54:14 .. 00:05:04, every second, empty ones included
    assert mismatches(batch, live, names) == []
    if config is SHORT_WINDOWS:  # every feature was really compared somewhere
        assert all(batch[name].drop_nulls().len() > 100 for name in names)


def synthetic_records(hours: int) -> tuple[str, list[Record]]:
    """Trades and book tickers of the first hours of a synthetic day, in receive order
    (fills received 2 ms after they happen, the book after the order 1 µs later)."""
    market = SyntheticMarket(seed=11, trades_per_day=100_000)
    tape = market.tape("BTCUSDT", dt.date(2024, 3, 1))
    inst = tape.instrument
    end_us = int(tape.trade_time_us[0]) + hours * 3_600_000_000
    timed: list[tuple[int, int, Record]] = []
    for k in range(tape.trade_count):
        time_us = int(tape.trade_time_us[k])
        if time_us >= end_us:
            break
        trade = Trade(
            inst.symbol, tape.first_trade_id + k,
            format_e8(int(tape.trade_price_ticks[k]) * inst.tick_e8),
            format_e8(int(tape.trade_qty_steps[k]) * inst.step_e8),
            bool(tape.trade_buyer_maker[k]), time_us * 1000, time_us * 1000,
            time_us * 1000 + 2_000_000,
        )  # fmt: skip
        timed.append((trade.receive_ns, 0, trade))
    for j in range(tape.order_count):
        receive_ns = int(tape.order_time_us[j]) * 1000 + 2_001_000
        if receive_ns >= end_us * 1000:
            break
        ticker = parse_book_ticker(book_ticker_json(inst, state_after(tape, j)), receive_ns)
        timed.append((receive_ns, 1, ticker))
    timed.sort(key=lambda item: (item[0], item[1]))
    return inst.symbol, [record for _, _, record in timed]


def test_hours_of_synthetic_tape_give_the_same_features_without_drift():
    # Arrange
    symbol, records = synthetic_records(hours=6)
    names = feature_names(DEFAULT_CONFIG, ALL_GROUPS)

    # Act
    batch = batch_features(symbol, records, DEFAULT_CONFIG)
    live = live_features(symbol, records, DEFAULT_CONFIG)

    # Assert
    assert batch.height >= 6 * 3600 - 2
    assert [r.event_timestamp_us for r in live] == batch["event_timestamp"].dt.epoch("us").to_list()
    assert mismatches(batch, live, names) == []
    last = live[-1].values
    assert all(last[name] is not None for name in names)  # the last hour is fully warmed up
