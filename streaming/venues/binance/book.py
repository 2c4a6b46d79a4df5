"""Local L2 order book kept in sync with Binance's documented diff-depth procedure.

1. Subscribe to ``<symbol>@depth`` and buffer its updates.
2. Take a REST ``/api/v3/depth`` snapshot (``lastUpdateId``).
3. Drop buffered updates with ``u <= lastUpdateId``; the first one applied must bridge the
   snapshot, ``U <= lastUpdateId + 1 <= u``; each later one must continue the chain,
   ``U == previous u + 1``. Anything else is a gap: the book is discarded and must be rebuilt
   from a fresh snapshot.
4. Quantities are absolute; a zero quantity removes the level.

Buffering is not optional: in real sessions the update that bridges the snapshot can arrive
before the snapshot response does.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from decimal import Decimal

from streaming.venues.binance.records import DepthSnapshot, DepthUpdate, PriceLevel


class OrderBookGapError(Exception):
    """The diff-depth chain is broken; the book was reset and needs a new snapshot."""

    def __init__(self, symbol: str, expected_first_id: int, update: DepthUpdate) -> None:
        super().__init__(
            f"{symbol}: depth update {update.first_update_id}..{update.final_update_id} "
            f"does not continue at {expected_first_id}"
        )
        self.symbol = symbol
        self.expected_first_id = expected_first_id
        self.update = update


def _is_zero(quantity: str) -> bool:
    # Quantities are validated plain decimals, so only zeros and a dot are left after stripping.
    return not quantity.strip("0.")


class _BookSide:
    """One side of the book: exact decimal prices kept sorted ascending."""

    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.prices: list[Decimal] = []
        self.levels: dict[Decimal, PriceLevel] = {}

    def clear(self) -> None:
        """Remove every level."""
        self.prices.clear()
        self.levels.clear()

    def set(self, price_text: str, quantity: str) -> None:
        """Set a level's absolute quantity; zero removes it."""
        price = Decimal(price_text)
        if _is_zero(quantity):
            # Removing a level the book does not hold is normal (it may lie beyond the snapshot).
            if self.levels.pop(price, None) is not None:
                del self.prices[bisect_left(self.prices, price)]
            return
        if price not in self.levels:
            self.prices.insert(bisect_left(self.prices, price), price)
        self.levels[price] = (price_text, quantity)


class OrderBook:
    """L2 book for one symbol; feed it every depth update and, once, a REST snapshot."""

    def __init__(self, symbol: str, max_buffered_updates: int = 10_000) -> None:
        self.symbol = symbol
        self._bids = _BookSide()
        self._asks = _BookSide()
        self._buffer: deque[DepthUpdate] = deque(maxlen=max_buffered_updates)
        self._last_update_id: int | None = None
        self._bridged = False

    @property
    def synced(self) -> bool:
        """True once a snapshot was loaded and an update bridged it (best prices are valid)."""
        return self._bridged

    @property
    def last_update_id(self) -> int | None:
        """Update id the book reflects, None before a snapshot."""
        return self._last_update_id

    @property
    def buffered(self) -> int:
        """Updates waiting for a snapshot."""
        return len(self._buffer)

    def reset(self) -> None:
        """Discard the book; updates are buffered again until the next snapshot."""
        self._bids.clear()
        self._asks.clear()
        self._last_update_id = None
        self._bridged = False

    def apply_update(self, update: DepthUpdate) -> bool:
        """Buffer or apply one diff-depth update; True when it changed the book.

        Raises OrderBookGapError when the update does not continue the chain; the book is then
        reset and this update is kept in the buffer for the next snapshot.
        """
        if update.symbol != self.symbol:
            raise ValueError(f"{update.symbol} depth update given to the {self.symbol} book")
        if self._last_update_id is None:
            self._buffer.append(update)
            return False
        return self._apply_in_sequence(update)

    def apply_snapshot(self, snapshot: DepthSnapshot) -> int:
        """Load a REST snapshot and replay the buffered updates; returns how many were applied.

        Raises OrderBookGapError when the buffered updates do not bridge the snapshot (it is
        older than the first buffered update): take a new snapshot.
        """
        if snapshot.symbol != self.symbol:
            raise ValueError(f"{snapshot.symbol} snapshot given to the {self.symbol} book")
        self.reset()
        for price, quantity in snapshot.bids:
            self._bids.set(price, quantity)
        for price, quantity in snapshot.asks:
            self._asks.set(price, quantity)
        self._last_update_id = snapshot.last_update_id
        pending = list(self._buffer)
        self._buffer.clear()
        applied = 0
        for index, update in enumerate(pending):
            try:
                applied += self._apply_in_sequence(update)
            except OrderBookGapError:
                self._buffer.extend(pending[index + 1 :])
                raise
        return applied

    def _apply_in_sequence(self, update: DepthUpdate) -> bool:
        last_id = self._last_update_id
        assert last_id is not None
        if update.final_update_id <= last_id:
            return False  # already contained in the snapshot (or a duplicate)
        in_chain = (
            update.first_update_id == last_id + 1
            if self._bridged
            else update.first_update_id <= last_id + 1
        )
        if not in_chain:
            self.reset()
            self._buffer.append(update)
            raise OrderBookGapError(self.symbol, last_id + 1, update)
        for price, quantity in update.bids:
            self._bids.set(price, quantity)
        for price, quantity in update.asks:
            self._asks.set(price, quantity)
        self._last_update_id = update.final_update_id
        self._bridged = True
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
        """True when the best bid is at or above the best ask (never valid on a synced book)."""
        bids, asks = self._bids.prices, self._asks.prices
        return bool(bids and asks and bids[-1] >= asks[0])
