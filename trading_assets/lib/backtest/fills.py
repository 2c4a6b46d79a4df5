"""How an order fills: the one fill model of the backtest and of the sidecar's paper account.

An order is a change of position worth ``notional`` in quote currency (positive buys, negative
sells), or of ``quantity`` in base currency (a close: exactly what is held), taken at market.
It fills against the best data there is at the moment it reaches the venue (the decision time
plus the latency), and the fill says which it used:

* ``book``: the captured L2 book. The order walks the opposite side from its best level, taking
  each level's size until its notional is done; a book too thin for it fills what it holds and
  reports the rest unfilled.
* ``ticker``: the best bid and ask and their sizes only. Up to the touch's size the order fills
  at the touch; the rest is assumed to fill there too (nothing is known beyond it), and the fill
  says how much that was.
* ``bar``: a trade price only (a 1 s bar's close). The order pays half an assumed spread over it.

Every fill pays ``fee_bp`` of its notional. Prices and sizes come in as the book keeps them
(integer 1e-8 units) and leave as floats in quote currency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from trading_assets.lib.book.rebuild import Book
from trading_assets.lib.models.policy import BP

UNITS = 1e-8
FillSource = Literal["book", "ticker", "bar"]
BOOK: FillSource = "book"
TICKER: FillSource = "ticker"
BAR: FillSource = "bar"


@dataclass(frozen=True)
class Fill:
    """One market order's fill: ``quantity`` (base, signed like the order) at
    ``average_price``, against ``mid`` at the time; ``unfilled`` notional the data could not
    place (a book too thin), ``beyond_touch`` notional assumed filled at the touch without
    known size (ticker data), ``levels`` walked, and ``fee`` paid (quote)."""

    source: FillSource
    notional: float
    quantity: float
    average_price: float
    mid: float
    fee: float
    levels: int = 1
    unfilled: float = 0.0
    beyond_touch: float = 0.0

    @property
    def slippage_bps(self) -> float:
        """What the fill paid over the mid, in basis points (positive: worse than the mid)."""
        side = 1.0 if self.quantity > 0 else -1.0
        return side * (self.average_price / self.mid - 1.0) / BP


def _walk(
    levels: Iterable[tuple[int, int]], notional: float, quantity: float | None
) -> tuple[float, float, int, float]:
    """Take ``notional`` (quote), or ``quantity`` (base) when given, from ``levels`` (price,
    size units; best first): base quantity, quote spent, levels touched, and what is left over
    (quote; for a quantity, at the last price touched)."""
    left = notional if quantity is None else quantity
    taken, spent, touched, price = 0.0, 0.0, 0, 0.0
    for price_units, size_units in levels:
        if left <= 0:
            break
        price, size = price_units * UNITS, size_units * UNITS
        take = min(size, left / price if quantity is None else left)
        taken += take
        spent += take * price
        left -= take * price if quantity is None else take
        touched += 1
    left = max(left, 0.0)
    return taken, spent, touched, left if quantity is None else left * price


def _side(notional: float, quantity: float | None) -> float:
    """The order's sign (1 buys, −1 sells), refusing an empty order."""
    amount = notional if quantity is None else quantity
    if not amount:
        raise ValueError("an order needs a non-zero notional or quantity")
    return 1.0 if amount > 0 else -1.0


def fill_on_book(
    book: Book, notional: float, fee_bp: float, quantity: float | None = None
) -> Fill | None:
    """``notional`` (signed quote), or ``quantity`` (signed base) when given, at market against
    the book; None when the side it takes is empty."""
    sign = _side(notional, quantity)
    bid, ask = book.best_bid, book.best_ask
    if bid is None or ask is None:
        return None
    mid = (bid + ask) * UNITS / 2
    if sign > 0:
        levels = ((p, book.asks[p]) for p in sorted(book.asks))
    else:
        levels = ((p, book.bids[p]) for p in sorted(book.bids, reverse=True))
    size = None if quantity is None else abs(quantity)
    taken, spent, touched, left = _walk(levels, abs(notional), size)
    if not taken:
        return None
    return Fill(BOOK, sign * spent, sign * taken, spent / taken, mid, spent * fee_bp * BP,
                touched, unfilled=left)  # fmt: skip


def fill_on_ticker(
    bid: float, bid_size: float, ask: float, ask_size: float, notional: float, fee_bp: float,
    quantity: float | None = None,
) -> Fill:  # fmt: skip
    """``notional`` (signed quote), or ``quantity`` (signed base) when given, at the touch of a
    book ticker (prices and sizes in quote and base)."""
    sign = _side(notional, quantity)
    price, size = (ask, ask_size) if sign > 0 else (bid, bid_size)
    spent = abs(notional) if quantity is None else abs(quantity) * price
    beyond = max(spent - price * size, 0.0)
    return Fill(TICKER, sign * spent, sign * spent / price, price, (bid + ask) / 2,
                spent * fee_bp * BP, beyond_touch=beyond)  # fmt: skip


def fill_on_bar(
    close: float, notional: float, spread_bps: float, fee_bp: float, quantity: float | None = None
) -> Fill:
    """``notional`` (signed quote), or ``quantity`` (signed base) when given, at a bar's close
    plus half ``spread_bps`` against the order."""
    sign = _side(notional, quantity)
    price = close * (1.0 + sign * spread_bps * BP / 2)
    spent = abs(notional) if quantity is None else abs(quantity) * price
    return Fill(BAR, sign * spent, sign * spent / price, price, close, spent * fee_bp * BP)
