"""The synthetic market's planted edge: what the latent drift does to flow, book and prices, the
oracle that knows it, and the pure random walk left when it is turned off."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest

from streaming.simulator import synthetic_book as book
from streaming.simulator.latent import DEFAULT_EDGE_PARAMS, SECONDS_PER_DAY, drift_path
from streaming.simulator.synthetic import SyntheticMarket
from streaming.simulator.tape import DayTape, day_start_us
from streaming.venues.binance.book import OrderBook
from streaming.venues.binance.parse import (
    parse_book_ticker,
    parse_depth_update,
    parse_rest_depth,
)

DAY = dt.date(2024, 3, 1)
DAYS = [DAY, DAY + dt.timedelta(days=1)]
US = 1_000_000


@pytest.fixture(scope="module")
def with_edge() -> SyntheticMarket:
    return SyntheticMarket(seed=3)


@pytest.fixture(scope="module")
def without_edge() -> SyntheticMarket:
    return SyntheticMarket(seed=3, edge=0.0)


def order_signs(tape: DayTape) -> np.ndarray:
    return np.where(tape.trade_buyer_maker[tape.order_first_trade], -1.0, 1.0)


def directions(market_with_edge: SyntheticMarket, tape: DayTape) -> np.ndarray:
    """The edge market's episode direction at each order of ``tape`` (of any market)."""
    latent = market_with_edge.tape(tape.instrument.symbol, tape.day).latent
    return latent.direction_at(tape.order_time_us - day_start_us(tape.day))


def robust_t(x: np.ndarray, y: np.ndarray) -> float:
    """t-statistic of the covariance of x and y, heteroskedasticity-consistent (prices here have
    clustered volatility and heavy tails, so the textbook 1/√n error would be far too small)."""
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt(((x * y) ** 2).sum()))


def test_edge_strength_scales_the_same_episodes() -> None:
    full = SyntheticMarket(seed=3).tape("BTCUSDT", DAY).latent
    half = SyntheticMarket(seed=3, edge=0.5).tape("BTCUSDT", DAY).latent
    off = SyntheticMarket(seed=3, edge=0.0).tape("BTCUSDT", DAY).latent

    trending = full.informed != 0

    assert 0.01 < trending.mean() < 0.1  # sparse episodes, a few an hour
    assert np.allclose(half.informed, 0.5 * full.informed)
    assert half.informed_share == pytest.approx(0.5 * DEFAULT_EDGE_PARAMS.informed_share)
    assert not off.informed.any()
    assert (off.informed_share, off.intensity_boost, off.book_lean) == (0.0, 0.0, 0.0)


def test_price_drift_follows_the_informed_drift_after_the_lead(with_edge: SyntheticMarket) -> None:
    latent = with_edge.tape("BTCUSDT", DAY).latent
    lead = DEFAULT_EDGE_PARAMS.lead_s

    assert np.array_equal(latent.price_drift[lead:], latent.informed[:-lead])
    assert not latent.price_drift[:lead].any()


@pytest.mark.parametrize("edge", [1.0, 0.0])
def test_a_day_closes_on_the_next_days_opening_bid(edge: float) -> None:
    market = SyntheticMarket(seed=3, trades_per_day=60_000, edge=edge)

    closes = [int(market.tape("ETHUSDT", day).order_bid_ticks[-1]) for day in DAYS]
    opens = [market.tape("ETHUSDT", day + dt.timedelta(days=1)).open_ticks for day in DAYS]

    assert closes == opens


def test_without_edge_trade_prices_are_a_martingale(without_edge: SyntheticMarket) -> None:
    """No bid-ask bounce and no impact of predictable flow: neither the last price change nor the
    last order's side tells anything about the next price change."""
    statistics = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for day in DAYS:
            tape = without_edge.tape(symbol, day)
            price = tape.trade_price_ticks[tape.order_first_trade].astype(np.float64)
            change, sign = np.diff(price), order_signs(tape)
            statistics.append(robust_t(change[:-1], change[1:]))
            statistics.append(robust_t(sign[1:-1], change[1:]))

    assert len(statistics) == 8
    assert max(abs(t) for t in statistics) < 4.0


def test_informed_taker_flow_leans_toward_the_drift(
    with_edge: SyntheticMarket, without_edge: SyntheticMarket
) -> None:
    share = DEFAULT_EDGE_PARAMS.informed_share
    expected_up = share + (1 - share) / 2  # informed buy; the rest buy half the time

    def buy_share(market: SyntheticMarket) -> dict[int, float]:
        tape = market.tape("BTCUSDT", DAY)
        direction, buys = directions(with_edge, tape), order_signs(tape) > 0
        return {d: float(buys[direction == d].mean()) for d in (-1, 0, 1)}

    leaning, flat = buy_share(with_edge), buy_share(without_edge)

    assert leaning[1] == pytest.approx(expected_up, abs=0.03)
    assert leaning[-1] == pytest.approx(1 - expected_up, abs=0.03)
    assert leaning[0] == pytest.approx(0.5, abs=0.05)
    assert all(value == pytest.approx(0.5, abs=0.05) for value in flat.values())


def test_orders_arrive_faster_during_episodes(with_edge: SyntheticMarket) -> None:
    tape = with_edge.tape("BTCUSDT", DAY)
    trending = tape.latent.informed != 0

    per_second = np.bincount(
        (tape.order_time_us - day_start_us(DAY)) // US, minlength=SECONDS_PER_DAY
    )
    ratio = per_second[trending].mean() / per_second[~trending].mean()

    assert ratio == pytest.approx(1 + DEFAULT_EDGE_PARAMS.intensity_boost, rel=0.3)


def test_book_ticker_imbalance_leans_toward_the_drift(
    with_edge: SyntheticMarket, without_edge: SyntheticMarket
) -> None:
    def mean_imbalance(market: SyntheticMarket, direction: int) -> float:
        tape = market.tape("BTCUSDT", DAY)
        orders = np.flatnonzero(directions(with_edge, tape) == direction)[:3000]
        imbalances = []
        for order in orders:
            state = book.state_after(tape, int(order))
            ticker = parse_book_ticker(book.book_ticker_json(tape.instrument, state), 0)
            bid, ask = float(ticker.bid_qty), float(ticker.ask_qty)
            imbalances.append((bid - ask) / (bid + ask))
        return float(np.mean(imbalances))

    up, down = mean_imbalance(with_edge, 1), mean_imbalance(with_edge, -1)
    quiet = mean_imbalance(with_edge, 0)
    flat = [mean_imbalance(without_edge, d) for d in (-1, 0, 1)]

    assert up > 0.25 and down < -0.25
    assert abs(quiet) < 0.05
    assert max(abs(value) for value in flat) < 0.05


def test_depth_diffs_keep_a_leaning_book_equal_to_its_snapshots(
    with_edge: SyntheticMarket,
) -> None:
    tape = with_edge.tape("ETHUSDT", DAY)
    first = int(np.flatnonzero(tape.order_direction != 0)[0]) - 20  # into an episode and out
    states = [book.state_after(tape, j) for j in range(first, first + 200)]
    inst, symbol = tape.instrument, tape.instrument.symbol
    synced = OrderBook(symbol)
    synced.apply_snapshot(parse_rest_depth(book.snapshot_json(inst, states[0], 100), symbol, 0))

    for before, after in itertools.pairwise(states):
        synced.apply_update(parse_depth_update(book.depth_update_json(inst, before, after, 0), 0))
    final = OrderBook(symbol)
    final.apply_snapshot(parse_rest_depth(book.snapshot_json(inst, states[-1], 100), symbol, 0))
    ticker = parse_book_ticker(book.book_ticker_json(inst, states[-1]), 0)

    assert any(tape.order_direction[first : first + 200] != 0)
    assert synced.bids(20) == final.bids(20) and synced.asks(20) == final.asks(20)
    assert synced.best_bid() == (ticker.bid_price, ticker.bid_qty)
    assert synced.best_ask() == (ticker.ask_price, ticker.ask_qty)


def test_oracle_is_the_expected_price_drift_given_the_latent() -> None:
    """Over many drawn days, the price drift that followed each time, regressed on the oracle's
    forecast at that time, has slope 1 and no intercept: the forecast is calibrated."""
    forecasts, realized = [], []
    times = np.arange(600, SECONDS_PER_DAY - 120, 7) * US + 250_000
    for seed in range(40):
        latent = drift_path(np.random.default_rng(seed))
        forecasts.append(latent.expected_forward_return(times, 60))
        realized.append(latent.cumulative(times + 60 * US) - latent.cumulative(times))
    forecast, after = np.concatenate(forecasts), np.concatenate(realized)

    slope, intercept = np.polyfit(forecast, after, 1)

    assert slope == pytest.approx(1.0, abs=0.05)
    assert abs(intercept) < 1e-6  # 0.01 bp
    assert np.corrcoef(forecast, after)[0, 1] > 0.8  # the lead makes most of it known
