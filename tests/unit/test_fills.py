"""The fill model: a market order walks the captured book level by level, falls back to the
touch of a book ticker, then to a bar's close with half an assumed spread, and says which it
used and what it could not place."""

from __future__ import annotations

import pytest

from trading_assets.lib.backtest.fills import (
    BAR,
    BOOK,
    TICKER,
    fill_on_bar,
    fill_on_book,
    fill_on_ticker,
)
from trading_assets.lib.book.lines import SYNC
from trading_assets.lib.book.rebuild import Book, LevelSnapshot

pytestmark = pytest.mark.backtest
E8 = 100_000_000


def book() -> Book:
    """Bids 100×5, 99×4; asks 101×2, 102×3, 103×10 (prices and sizes in 1e-8 units)."""
    bids, bid_sizes = [100 * E8, 99 * E8], [5 * E8, 4 * E8]
    asks, ask_sizes = [101 * E8, 102 * E8, 103 * E8], [2 * E8, 3 * E8, 10 * E8]
    return Book.of(LevelSnapshot(1, SYNC, 1, 0, bids, bid_sizes, asks, ask_sizes))


def test_a_buy_walks_the_asks_and_a_sell_the_bids():
    bought = fill_on_book(book(), 101 * 2 + 102 * 1, fee_bp=10.0)
    sold = fill_on_book(book(), -(100 * 5 + 99 * 2), fee_bp=10.0)

    assert bought is not None and sold is not None
    assert (bought.source, bought.levels, bought.unfilled) == (BOOK, 2, 0.0)
    assert bought.quantity == pytest.approx(3.0)
    assert bought.average_price == pytest.approx(304 / 3)
    assert bought.mid == 100.5 and bought.slippage_bps == pytest.approx((304 / 3 / 100.5 - 1) * 1e4)
    assert bought.fee == pytest.approx(304 * 10e-4)
    assert sold.quantity == pytest.approx(-7.0) and sold.levels == 2
    assert sold.average_price == pytest.approx(698 / 7)
    assert sold.slippage_bps > 0  # a sell below the mid is a cost too


def test_an_order_bigger_than_the_book_says_what_it_could_not_place():
    whole = 101 * 2 + 102 * 3 + 103 * 10

    fill = fill_on_book(book(), whole + 500.0, fee_bp=0.0)

    assert fill is not None
    assert fill.quantity == pytest.approx(15.0) and fill.levels == 3
    assert fill.unfilled == pytest.approx(500.0)


def test_larger_orders_never_fill_better():
    prices = [fill_on_book(book(), n, 0.0).average_price for n in (50, 200, 400, 900, 1500)]  # type: ignore[union-attr]

    assert prices == sorted(prices)


def test_the_ticker_fills_at_the_touch_and_says_what_lay_beyond_it():
    fill = fill_on_ticker(100.0, 5.0, 101.0, 2.0, notional=303.0, fee_bp=10.0)

    assert (fill.source, fill.average_price, fill.mid) == (TICKER, 101.0, 100.5)
    assert fill.quantity == pytest.approx(3.0)
    assert fill.beyond_touch == pytest.approx(303.0 - 202.0)


def test_the_bar_pays_half_the_assumed_spread_over_its_close():
    bought = fill_on_bar(100.0, 1000.0, spread_bps=2.0, fee_bp=10.0)
    sold = fill_on_bar(100.0, -1000.0, spread_bps=2.0, fee_bp=10.0)

    assert bought.source == BAR and bought.average_price == pytest.approx(100.01)
    assert sold.average_price == pytest.approx(99.99)
    assert bought.slippage_bps == pytest.approx(1.0) and sold.slippage_bps == pytest.approx(1.0)
    assert bought.fee == pytest.approx(1.0)


def test_an_empty_side_gives_no_fill_and_a_zero_order_is_refused():
    one_sided = Book.of(LevelSnapshot(1, SYNC, 1, 0, [100 * E8], [E8], [], []))

    assert fill_on_book(one_sided, 100.0, 0.0) is None
    with pytest.raises(ValueError, match="non-zero"):
        fill_on_book(book(), 0.0, 0.0)
