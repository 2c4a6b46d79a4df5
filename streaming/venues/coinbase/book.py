"""Local L2 order books kept from Coinbase's ``level2`` channel, one per product.

Coinbase needs no REST snapshot and no buffering: a ``level2`` subscription starts with the
product's whole book (a :class:`DepthSnapshot`), then sends every change (:class:`DepthUpdate`)
with absolute quantities, "0" removing a level. Update ids are the frames' ``sequence_num``,
which count the frames of all the connection's channels, so they rise between updates of one
product but do not chain; a lost frame is caught by the parser (a ``Resync``), not here.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

from streaming.records import DepthSnapshot, DepthUpdate, PriceLevel


class BookNotReadyError(Exception):
    """An update for a book whose snapshot has not been applied."""


def _is_zero(quantity: str) -> bool:
    # Quantities are checked plain decimals, so only zeros and a dot are left after stripping.
    return not quantity.strip("0.")


class _Side:
    """One side of a book: exact decimal prices kept sorted ascending."""

    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.prices: list[Decimal] = []
        self.levels: dict[Decimal, PriceLevel] = {}

    def load(self, levels: tuple[PriceLevel, ...]) -> None:
        """Replace every level with ``levels`` (zero quantities skipped)."""
        self.levels = {Decimal(p): (p, q) for p, q in levels if not _is_zero(q)}
        self.prices = sorted(self.levels)

    def set(self, price_text: str, quantity: str) -> None:
        """Set a level's absolute quantity; zero removes it."""
        price = Decimal(price_text)
        if _is_zero(quantity):
            if self.levels.pop(price, None) is not None:
                del self.prices[bisect_left(self.prices, price)]
            return
        if price not in self.levels:
            self.prices.insert(bisect_left(self.prices, price), price)
        self.levels[price] = (price_text, quantity)


class OrderBook:
    """One product's L2 book: a snapshot, then every update after it."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._bids = _Side()
        self._asks = _Side()
        self.last_update_id: int | None = None
        """The sequence number the book reflects; None before its snapshot."""

    def apply(self, record: DepthSnapshot | DepthUpdate) -> bool:
        """Apply a snapshot or an update; False for an update not newer than the book."""
        if record.symbol != self.symbol:
            raise ValueError(f"{record.symbol} depth given to the {self.symbol} book")
        if type(record) is DepthSnapshot:
            self._bids.load(record.bids)
            self._asks.load(record.asks)
            self.last_update_id = record.last_update_id
            return True
        assert type(record) is DepthUpdate
        if self.last_update_id is None:
            raise BookNotReadyError(
                f"{self.symbol}: update {record.final_update_id} before a snapshot"
            )
        if record.final_update_id <= self.last_update_id:
            return False
        for price, quantity in record.bids:
            self._bids.set(price, quantity)
        for price, quantity in record.asks:
            self._asks.set(price, quantity)
        self.last_update_id = record.final_update_id
        return True

    def best_bid(self) -> PriceLevel | None:
        """Highest bid as (price, quantity) strings, None when the side is empty."""
        prices = self._bids.prices
        return self._bids.levels[prices[-1]] if prices else None

    def best_ask(self) -> PriceLevel | None:
        """Lowest ask as (price, quantity) strings, None when the side is empty."""
        prices = self._asks.prices
        return self._asks.levels[prices[0]] if prices else None

    def bids(self, depth: int | None = None) -> list[PriceLevel]:
        """Bid levels, best (highest) first."""
        prices = self._bids.prices
        chosen = prices[::-1] if depth is None else prices[: -depth - 1 : -1]
        return [self._bids.levels[price] for price in chosen]

    def asks(self, depth: int | None = None) -> list[PriceLevel]:
        """Ask levels, best (lowest) first."""
        prices = self._asks.prices if depth is None else self._asks.prices[:depth]
        return [self._asks.levels[price] for price in prices]

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        bids, asks = self._bids.prices, self._asks.prices
        return bool(bids and asks and bids[-1] >= asks[0])


class Books:
    """The books of every product of one connection, built from its depth records."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, OrderBook] = {}

    def apply(self, record: DepthSnapshot | DepthUpdate) -> OrderBook:
        """Apply the record to its product's book (created by its snapshot); the book."""
        book = self.by_symbol.get(record.symbol)
        if book is None:
            if type(record) is not DepthSnapshot:
                raise BookNotReadyError(f"{record.symbol}: an update before its snapshot")
            book = self.by_symbol[record.symbol] = OrderBook(record.symbol)
        book.apply(record)
        return book
