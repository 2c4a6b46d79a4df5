"""Order book sync by Binance's diff-depth procedure, on hand-written updates and snapshots."""

from __future__ import annotations

import pytest

from streaming.records import DepthSnapshot, DepthUpdate, PriceLevel
from streaming.venues.binance.book import OrderBook, OrderBookGapError

SYMBOL = "BNBBTC"


def update(
    first: int,
    final: int,
    bids: list[PriceLevel] | None = None,
    asks: list[PriceLevel] | None = None,
) -> DepthUpdate:
    """A diff-depth update covering update ids first..final."""
    return DepthUpdate(SYMBOL, first, final, tuple(bids or ()), tuple(asks or ()), 0, 0)


def snapshot(last_update_id: int) -> DepthSnapshot:
    """A two-level snapshot: bids 9.99 and 9.5, asks 10.01 and 10.5."""
    return DepthSnapshot(
        SYMBOL,
        last_update_id,
        (("9.99", "1"), ("9.5", "2")),
        (("10.01", "3"), ("10.5", "4")),
        0,
    )


def test_updates_before_the_snapshot_are_only_buffered() -> None:
    # Arrange
    book = OrderBook(SYMBOL)

    # Act
    changed = book.apply_update(update(95, 99, bids=[("9.98", "1")]))

    # Assert
    assert changed is False
    assert book.buffered == 1
    assert not book.synced
    assert book.best_bid() is None


def test_snapshot_replays_buffer_dropping_stale_updates_and_bridging() -> None:
    # Arrange: 95..99 is inside the snapshot (100), 98..103 bridges it, 104..105 follows.
    book = OrderBook(SYMBOL)
    book.apply_update(update(95, 99, bids=[("9.99", "0")]))
    book.apply_update(update(98, 103, bids=[("9.995", "5")]))
    book.apply_update(update(104, 105, asks=[("10.01", "0")]))

    # Act
    applied = book.apply_snapshot(snapshot(100))

    # Assert
    assert applied == 2
    assert book.synced
    assert book.last_update_id == 105
    assert book.best_bid() == ("9.995", "5")
    assert book.best_ask() == ("10.5", "4")
    assert book.bids() == [("9.995", "5"), ("9.99", "1"), ("9.5", "2")]


def test_first_live_update_after_snapshot_must_bridge_it() -> None:
    # Arrange
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot(100))

    # Act
    stale = book.apply_update(update(90, 100, asks=[("10.2", "7")]))
    bridged = book.apply_update(update(100, 101, asks=[("10.2", "7")]))

    # Assert
    assert (stale, bridged) == (False, True)
    assert book.asks() == [("10.01", "3"), ("10.2", "7"), ("10.5", "4")]


def test_snapshot_older_than_the_buffer_is_a_gap() -> None:
    # Arrange: the first buffered update starts at 120, the snapshot stops at 100.
    book = OrderBook(SYMBOL)
    book.apply_update(update(120, 125))
    book.apply_update(update(126, 130))

    # Act
    with pytest.raises(OrderBookGapError) as caught:
        book.apply_snapshot(snapshot(100))

    # Assert
    assert caught.value.expected_first_id == 101
    assert caught.value.update.first_update_id == 120
    assert not book.synced
    assert book.buffered == 2


def test_gap_after_sync_resets_the_book_and_a_new_snapshot_recovers() -> None:
    # Arrange
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot(100))
    book.apply_update(update(101, 110))

    # Act
    with pytest.raises(OrderBookGapError) as caught:
        book.apply_update(update(112, 115, bids=[("9.97", "1")]))
    reset_state = (book.synced, book.last_update_id, book.best_bid(), book.buffered)
    book.apply_update(update(116, 118))
    applied = book.apply_snapshot(snapshot(113))

    # Assert
    assert caught.value.expected_first_id == 111
    assert reset_state == (False, None, None, 1)
    assert applied == 2
    assert book.synced
    assert book.last_update_id == 118


def test_overlapping_update_after_the_bridge_is_a_gap() -> None:
    # Arrange
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot(100))
    book.apply_update(update(101, 110))

    # Act / Assert
    with pytest.raises(OrderBookGapError):
        book.apply_update(update(105, 112))


def test_zero_quantity_removes_a_level_even_one_the_book_lacks() -> None:
    # Arrange
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot(100))

    # Act
    book.apply_update(update(101, 101, bids=[("9.99", "0.000"), ("1.00", "0")], asks=[]))

    # Assert
    assert book.bids() == [("9.5", "2")]
    assert book.best_bid() == ("9.5", "2")


def test_levels_are_ordered_by_exact_decimal_value_not_text() -> None:
    # Arrange: as text "10.0" < "9.5", as numbers it is the best bid.
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot(100))

    # Act
    book.apply_update(update(101, 101, bids=[("10.00", "1")], asks=[("10.009", "2")]))

    # Assert
    assert book.bids(2) == [("10.00", "1"), ("9.99", "1")]
    assert book.asks(2) == [("10.009", "2"), ("10.01", "3")]
    assert not book.is_crossed()


def test_crossed_book_is_detected() -> None:
    # Arrange
    book = OrderBook(SYMBOL)
    book.apply_snapshot(snapshot(100))

    # Act
    book.apply_update(update(101, 101, bids=[("10.01", "1")]))

    # Assert
    assert book.is_crossed()


def test_other_symbols_are_refused() -> None:
    # Arrange
    book = OrderBook("ETHBTC")

    # Act / Assert
    with pytest.raises(ValueError, match="BNBBTC"):
        book.apply_update(update(1, 2))
    with pytest.raises(ValueError, match="BNBBTC"):
        book.apply_snapshot(snapshot(1))
