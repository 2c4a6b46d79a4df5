"""The synthetic market: deterministic, contiguous, and shaped like a real spot tape."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from streaming.simulator.synthetic import SyntheticMarket

DAY = dt.date(2024, 8, 8)
TRADES_COLUMNS = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(seed=11, trades_per_day=60_000)


def _longest_mean_run(flags: np.ndarray) -> float:
    boundaries = np.flatnonzero(np.diff(flags.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], boundaries, [flags.size]]))
    return float(runs.mean())


def test_same_seed_same_day_gives_identical_trades(market: SyntheticMarket) -> None:
    other = SyntheticMarket(seed=11, trades_per_day=60_000)

    first = market.day_trades("BTCUSDT", DAY)
    second = other.day_trades("BTCUSDT", DAY)
    different_seed = SyntheticMarket(seed=12, trades_per_day=60_000).day_trades("BTCUSDT", DAY)

    assert first.equals(second)
    assert not first.equals(different_seed)


def test_schema_matches_binance_daily_trades_csv(market: SyntheticMarket) -> None:
    trades = market.day_trades("ETHUSDT", DAY)

    assert trades.columns == TRADES_COLUMNS
    assert trades.dtypes == [pl.Int64, pl.Utf8, pl.Utf8, pl.Utf8, pl.Int64, pl.Boolean, pl.Boolean]
    assert trades["price"].str.contains(r"^\d+\.\d{8}$").all()


def test_trade_ids_are_contiguous_across_the_day_boundary(market: SyntheticMarket) -> None:
    today = market.day_trades("BTCUSDT", DAY)
    tomorrow = market.day_trades("BTCUSDT", DAY + dt.timedelta(days=1))

    ids = pl.concat([today["id"], tomorrow["id"]]).to_numpy()

    assert np.all(np.diff(ids) == 1)
    assert market.first_trade_id("BTCUSDT", DAY + dt.timedelta(days=1)) == ids[today.height]


def test_timestamps_stay_inside_the_day_and_never_decrease(market: SyntheticMarket) -> None:
    trades = market.day_trades("BTCUSDT", DAY)
    day_start_ms = int(dt.datetime(2024, 8, 8, tzinfo=dt.UTC).timestamp() * 1000)

    times = trades["time"].to_numpy()

    assert times.min() >= day_start_ms
    assert times.max() < day_start_ms + 86_400_000
    assert np.all(np.diff(times) >= 0)


def test_prices_are_positive_on_the_tick_grid_and_quote_is_price_times_qty(
    market: SyntheticMarket,
) -> None:
    trades = market.day_trades("BTCUSDT", DAY).head(2000)
    tick = Decimal(market.instrument("BTCUSDT").tick_e8) / Decimal(100_000_000)

    prices = [Decimal(p) for p in trades["price"]]
    quotes = [Decimal(q) for q in trades["quote_qty"]]
    sizes = [Decimal(q) for q in trades["qty"]]

    assert all(p > 0 and p % tick == 0 for p in prices)
    assert all(q > 0 for q in sizes)
    products = zip(prices, sizes, quotes, strict=True)
    assert all(abs(p * s - q) < Decimal("0.00000001") for p, s, q in products)


def test_buys_lift_the_ask_one_tick_above_where_sells_hit_the_bid(market: SyntheticMarket) -> None:
    tape = market.tape("BTCUSDT", DAY)
    first = tape.order_first_trade

    price = tape.trade_price_ticks[first]
    is_sell = tape.trade_buyer_maker[first]

    assert np.all(price[is_sell] == tape.order_bid_ticks[is_sell])
    assert np.all(price[~is_sell] == tape.order_bid_ticks[~is_sell] + 1)


def test_both_sides_trade_in_runs_longer_than_coin_flips(market: SyntheticMarket) -> None:
    aggs = market.day_agg_trades("BTCUSDT", DAY)

    sides = aggs["is_buyer_maker"].to_numpy()

    assert 0.2 < sides.mean() < 0.8
    assert _longest_mean_run(sides) > 3.0  # independent fair signs average runs of 2


def test_absolute_returns_cluster(market: SyntheticMarket) -> None:
    closes = market.minute_bars("BTCUSDT", DAY)["close"].to_numpy().astype(float)

    absolute = np.abs(np.diff(np.log(closes)))
    autocorrelation = np.corrcoef(absolute[:-1], absolute[1:])[0, 1]

    assert autocorrelation > 0.1


def test_arrivals_are_burstier_than_a_poisson_process(market: SyntheticMarket) -> None:
    counts = market.minute_bars("BTCUSDT", DAY)["count"].to_numpy().astype(float)

    dispersion = counts.var() / counts.mean()

    assert dispersion > 5.0  # a Poisson process has dispersion 1


def test_agg_trades_group_fills_of_one_taker_order(market: SyntheticMarket) -> None:
    trades = market.day_trades("BTCUSDT", DAY)
    aggs = market.day_agg_trades("BTCUSDT", DAY)

    first_ids = aggs["first_trade_id"].to_numpy()
    last_ids = aggs["last_trade_id"].to_numpy()
    multi_fill = aggs.filter(pl.col("last_trade_id") > pl.col("first_trade_id")).row(0, named=True)
    fills = trades.filter(
        pl.col("id").is_between(multi_fill["first_trade_id"], multi_fill["last_trade_id"])
    )

    assert np.all(first_ids[1:] == last_ids[:-1] + 1)
    assert np.all(np.diff(aggs["agg_trade_id"].to_numpy()) == 1)
    assert fills["price"].n_unique() == 1 and fills["time"].n_unique() == 1
    assert fills["is_buyer_maker"].n_unique() == 1
    assert fills["price"][0] == multi_fill["price"]


def test_klines_summarise_the_trades(market: SyntheticMarket) -> None:
    trades = market.day_trades("BTCUSDT", DAY)
    klines = market.day_klines("BTCUSDT", DAY)

    assert klines.height == 1440
    assert klines["count"].sum() == trades.height
    first_minute = trades.filter(pl.col("time") < klines["close_time"][0] + 1)
    assert klines["open"][0] == first_minute["price"][0]
    assert klines["close"][0] == first_minute["price"][-1]


def test_csv_zip_round_trips_through_polars(market: SyntheticMarket) -> None:
    expected = market.day_trades("BTCUSDT", DAY)

    payload = market.day_trades_csv_zip("BTCUSDT", DAY)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        names = archive.namelist()
        raw = archive.read(names[0])
    parsed = pl.read_csv(
        raw,
        has_header=False,
        new_columns=TRADES_COLUMNS,
        schema_overrides={"price": pl.Utf8, "qty": pl.Utf8, "quote_qty": pl.Utf8},
    )

    assert names == ["BTCUSDT-trades-2024-08-08.csv"]
    assert raw.splitlines()[0].endswith(b",True") or raw.splitlines()[0].endswith(b",False")
    assert parsed.equals(expected)


def test_time_unit_switches_to_microseconds_from_2025(market: SyntheticMarket) -> None:
    last_ms_day = market.day_trades("BTCUSDT", dt.date(2024, 12, 31))
    first_us_day = market.day_trades("BTCUSDT", dt.date(2025, 1, 1))
    boundary_s = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()

    last_ms_times = last_ms_day["time"].to_numpy()
    first_us_times = first_us_day["time"].to_numpy()

    assert last_ms_times.max() < boundary_s * 1_000
    assert first_us_times.min() >= boundary_s * 1_000_000
    assert first_us_times.max() < (boundary_s + 86_400) * 1_000_000
    assert first_us_day["id"][0] == last_ms_day["id"][-1] + 1
