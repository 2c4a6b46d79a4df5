"""Kraken's L2 book, kept per symbol from its book channel and proved by Kraken's CRC32 checksum.

Kraken sends a snapshot, then updates of absolute quantities (a zero quantity removes the level)
with no sequence numbers. What proves a local book right is the CRC32 Kraken sends with every
update (v1: updates only, ``"c"``; v2: the snapshot too, ``checksum``), always over the top 10
levels of each side, whatever the subscribed depth:

1. for each of the 10 best asks, lowest price first: the price with its decimal point removed
   and its leading zeros stripped, then the quantity the same way (``"0.05000"`` → ``"5000"``,
   ``"0.00100000"`` → ``"100000"``), appended to one string;
2. then the same for the 10 best bids, highest price first;
3. the CRC32 of that string, as an unsigned 32-bit integer.

The digits are Kraken's own text, which is why prices and quantities are kept as received. The
upkeep rules are Kraken's too: apply every level of a message in order (the same price may come
twice), *then* cut each side to the subscribed depth (Kraken does not delete the levels that
fall out of scope), then compare. A removal of a level the book does not hold is normal.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Iterable
from decimal import Decimal

from streaming.records import PriceLevel
from streaming.venues.base import Resync

CHECKSUM_LEVELS = 10
CHECKSUM_MISMATCH = "checksum_mismatch"
BOOK_WITHOUT_SNAPSHOT = "book_without_snapshot"


def checksum_part(price: str, quantity: str) -> str:
    """One level's part of the checksum string: both decimals, points removed, zeros stripped."""
    return price.replace(".", "").lstrip("0") + quantity.replace(".", "").lstrip("0")


def _is_zero(quantity: str) -> bool:
    # Quantities are checked plain decimals, so only zeros and a dot are left after stripping.
    return not quantity.strip("0.")


class _Side:
    """One side of the book, best level first: ``keys`` ascending (the price for asks, minus the
    price for bids, both exact decimals), each level's (price, quantity, checksum part) by key,
    and the side's part of the checksum string, kept until one of its top levels changes."""

    __slots__ = ("_top_text", "keys", "levels")

    def __init__(self) -> None:
        self.keys: list[Decimal] = []
        self.levels: dict[Decimal, tuple[str, str, str]] = {}
        self._top_text: bytes | None = None  # None: to build again

    def set(self, key: Decimal, price: str, quantity: str) -> None:
        """Set a level's absolute quantity (zero removes it)."""
        levels, keys = self.levels, self.keys
        if _is_zero(quantity):
            if levels.pop(key, None) is None:
                return  # not held (beyond the depth, or already gone): nothing changes
            index = bisect_left(keys, key)
            del keys[index]
        else:
            index = bisect_left(keys, key)
            if key not in levels:
                keys.insert(index, key)
            levels[key] = (price, quantity, checksum_part(price, quantity))
        if index < CHECKSUM_LEVELS:
            self._top_text = None

    def load(self, levels: dict[Decimal, tuple[str, str, str]], depth: int) -> None:
        """Hold exactly ``levels`` (none of them zero), cut to the ``depth`` best."""
        self.levels = levels
        self.keys = sorted(levels)
        self._top_text = None
        self.keep(depth)

    def keep(self, depth: int) -> None:
        """Drop every level past the ``depth`` best (at least CHECKSUM_LEVELS)."""
        keys = self.keys
        if len(keys) > depth:
            levels = self.levels
            for key in keys[depth:]:
                del levels[key]
            del keys[depth:]

    def top(self, depth: int | None) -> list[PriceLevel]:
        """The ``depth`` best levels (all when None) as (price, quantity), best first."""
        keys = self.keys if depth is None else self.keys[:depth]
        levels = self.levels
        return [levels[key][:2] for key in keys]

    def top_text(self) -> tuple[bytes, bool]:
        """The side's part of the checksum string, and whether it was built anew."""
        text = self._top_text
        if text is not None:
            return text, False
        levels = self.levels
        text = "".join([levels[key][2] for key in self.keys[:CHECKSUM_LEVELS]]).encode()
        self._top_text = text
        return text, True


class KrakenBook:
    """One symbol's book at the subscribed ``depth``; ``update_id`` counts the messages applied
    since the snapshot (the snapshot is 1), Kraken sending no ids of its own."""

    __slots__ = ("_asks", "_bids", "_checksum", "depth", "symbol", "update_id")

    def __init__(self, symbol: str, depth: int) -> None:
        if depth < CHECKSUM_LEVELS:
            raise ValueError(f"book depth must be at least {CHECKSUM_LEVELS}, got {depth}")
        self.symbol = symbol
        self.depth = depth
        self._bids = _Side()
        self._asks = _Side()
        self._checksum = 0
        self.update_id = 0

    def load(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        """Replace the whole book with a snapshot's levels (a price sent twice: the last)."""
        self._bids.load(
            {-Decimal(p): (p, q, checksum_part(p, q)) for p, q in bids if not _is_zero(q)},
            self.depth,
        )
        self._asks.load(
            {Decimal(p): (p, q, checksum_part(p, q)) for p, q in asks if not _is_zero(q)},
            self.depth,
        )
        self.update_id = 1

    def apply(self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel]) -> None:
        """Apply one message's levels in order, then cut both sides to the depth."""
        bid_side, ask_side = self._bids, self._asks
        for price, quantity in bids:
            bid_side.set(-Decimal(price), price, quantity)
        for price, quantity in asks:
            ask_side.set(Decimal(price), price, quantity)
        bid_side.keep(self.depth)
        ask_side.keep(self.depth)
        self.update_id += 1

    def checksum(self) -> int:
        """Kraken's CRC32 of the book's top 10 levels (see the module's docstring); computed
        again only when a message changed one of them."""
        ask_text, asks_new = self._asks.top_text()
        bid_text, bids_new = self._bids.top_text()
        if asks_new or bids_new:
            self._checksum = zlib.crc32(ask_text + bid_text)
        return self._checksum

    def bids(self, depth: int | None = None) -> list[PriceLevel]:
        """Bid levels, best (highest) first."""
        return self._bids.top(depth)

    def asks(self, depth: int | None = None) -> list[PriceLevel]:
        """Ask levels, best (lowest) first."""
        return self._asks.top(depth)

    def best_bid(self) -> PriceLevel | None:
        """Highest bid as (price, quantity), None when the side is empty."""
        top = self._bids.top(1)
        return top[0] if top else None

    def best_ask(self) -> PriceLevel | None:
        """Lowest ask as (price, quantity), None when the side is empty."""
        top = self._asks.top(1)
        return top[0] if top else None

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (never so in a true book)."""
        bids, asks = self._bids.keys, self._asks.keys
        return bool(bids and asks and -bids[0] >= asks[0])


class KrakenBooks:
    """One connection's books by symbol: each snapshot starts one, each update must continue one,
    and every checksum Kraken sends is compared; a mismatch drops the book and raises Resync."""

    __slots__ = ("_books",)

    def __init__(self) -> None:
        self._books: dict[str, KrakenBook] = {}

    def get(self, symbol: str) -> KrakenBook | None:
        """The symbol's book, None before its snapshot (or after a mismatch)."""
        return self._books.get(symbol)

    def snapshot(
        self,
        symbol: str,
        depth: int,
        bids: Iterable[PriceLevel],
        asks: Iterable[PriceLevel],
        checksum: int | None,
    ) -> KrakenBook:
        """Start the symbol's book from a snapshot, checked against ``checksum`` when sent."""
        book = KrakenBook(symbol, depth)
        book.load(bids, asks)
        self._books[symbol] = book
        if checksum is not None:
            self._verify(book, checksum)
        return book

    def update(
        self, symbol: str, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], checksum: int
    ) -> KrakenBook:
        """Apply an update to the symbol's book and compare its checksum with ``checksum``."""
        book = self._books.get(symbol)
        if book is None:
            raise Resync(BOOK_WITHOUT_SNAPSHOT, f"{symbol}: a book update before its snapshot")
        book.apply(bids, asks)
        self._verify(book, checksum)
        return book

    def _verify(self, book: KrakenBook, expected: int) -> None:
        ours = book.checksum()
        if ours != expected:
            del self._books[book.symbol]
            raise Resync(
                CHECKSUM_MISMATCH,
                f"{book.symbol}: Kraken's book checksum is {expected}, the local book's {ours} "
                f"(after {book.update_id} messages)",
            )
