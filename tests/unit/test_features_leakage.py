"""No feature looks into the future; labels do; and the checker catches a feature that does."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from streaming.recordings import read_recording
from streaming.venues.binance import BookTicker, Trade, parse_stream_frame
from trading_assets.lib.features import (
    ALL_GROUPS,
    FeatureConfig,
    book_frame,
    check_lookahead,
    compute_features,
    compute_labels,
    feature_names,
    label_names,
    trades_frame,
)
from trading_assets.lib.lakehouse.bars import bars_from_trades

CONFIG = FeatureConfig(windows_s=(1, 10, 60, 240), label_horizon_s=30)
INSTRUMENT = "BINANCE:BTCUSDT"


@pytest.fixture(scope="module")
def market(shared_data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars and book frame of the recorded BTCUSDT session."""
    trades, tickers = [], []
    for day in ("20240808", "20240809"):
        for frame in read_recording(shared_data / "binance" / "ws" / f"btcusdt_{day}.txt.gz"):
            if frame.is_rest:
                continue
            record = parse_stream_frame(frame.payload, frame.receive_ns)
            if isinstance(record, Trade):
                trades.append(record)
            elif isinstance(record, BookTicker):
                tickers.append(record)
    return bars_from_trades(trades_frame(INSTRUMENT, trades)), book_frame(INSTRUMENT, tickers)


def sample_times(bars: pl.DataFrame, count: int = 12) -> list[dt.datetime]:
    """Event timestamps spread over the session, the first after the longest window warmed up."""
    first = bars["bar_start"].min()
    last = bars["bar_start"].max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    start = first + dt.timedelta(seconds=max(CONFIG.windows_s) + 2)
    step = (last - start) / count
    return [(start + i * step).replace(microsecond=0) for i in range(count)]


def features(bars: pl.DataFrame, book: pl.DataFrame | None) -> pl.DataFrame:
    return compute_features(bars, CONFIG, ALL_GROUPS, book=book, bar_s=1)


def test_no_feature_changes_when_the_input_stops_at_its_timestamp(market):
    # Arrange
    bars, book = market
    times = sample_times(bars)

    # Act
    report = check_lookahead(features, bars, times, bar_s=1, book=book)

    # Assert
    assert report.checked == len(times)
    assert set(report.columns) == set(feature_names(CONFIG, ALL_GROUPS))
    assert report.looks_ahead == []
    values = features(bars, book).filter(pl.col("event_timestamp").is_in(times))
    assert values.drop_nulls().height == len(times)  # every feature had a value to compare


def test_labels_are_reported_as_looking_ahead(market):
    # Arrange
    bars, _ = market

    # Act
    report = check_lookahead(
        lambda b, _book: compute_labels(b, CONFIG, bar_s=1), bars, sample_times(bars), bar_s=1
    )

    # Assert
    assert report.looks_ahead == sorted(label_names(CONFIG))
    assert len(report.columns["fwd_log_return_30s"]) == report.checked


def with_shifted_momentum(shift: int):
    """Features plus ``mom_1s`` shifted by ``shift`` bars: a negative shift reads the future."""

    def compute(bars: pl.DataFrame, book: pl.DataFrame | None) -> pl.DataFrame:
        out = features(bars, book)
        return out.with_columns(shifted=pl.col("mom_1s").shift(shift).over("instrument"))

    return compute


def with_next_book(bars: pl.DataFrame, book: pl.DataFrame | None) -> pl.DataFrame:
    """Features plus the first bid size *after* each timestamp (an as-of join the wrong way)."""
    assert book is not None
    out = features(bars, book).sort("event_timestamp")
    following = book.select("instrument", "time", next_bid_qty="bid_qty").sort("time")
    return out.join_asof(
        following,
        left_on="event_timestamp",
        right_on="time",
        by="instrument",
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    ).drop("time")


@pytest.mark.parametrize(
    ("compute", "leaky"),
    [
        (with_shifted_momentum(1), False),
        (with_shifted_momentum(-1), True),
        (with_next_book, True),
    ],
    ids=["lagged-momentum", "next-momentum", "next-book"],
)
def test_checker_fails_exactly_the_feature_that_reads_the_future(market, compute, leaky):
    # Arrange
    bars, book = market

    # Act
    report = check_lookahead(compute, bars, sample_times(bars), bar_s=1, book=book)

    # Assert
    leaked = report.looks_ahead
    if leaky:
        assert len(leaked) == 1
        assert leaked[0] in {"shifted", "next_bid_qty"}
    else:
        assert leaked == []
