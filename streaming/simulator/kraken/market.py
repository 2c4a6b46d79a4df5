"""The synthetic market as Kraken publishes it: each pair's book and trades, kept live.

:class:`KrakenLiveFeed` is the simulator's wall-clock publisher (:class:`SyntheticLiveFeed`:
the same day tapes, the same clock, the same walk from one taker order to the next across
midnight) rendering Kraken's v2 messages instead of Binance's. For every taker order that comes
due it publishes, to whoever subscribed (stream names: :func:`stream_name`):

- ``trade``: one update with the order's fills, ids those of the tape;
- ``ticker``: the best bid and ask with the rolling 24 h figures, when either changed
  (``event_trigger: bbo``) or on every order (``trades``, Kraken's default);
- ``book``: one update per subscribed depth with the levels the order changed and the checksum
  of the book it leaves (Kraken streams book changes as they happen, not on an interval).

Each pair's :class:`PairMarket` is the market as published so far, which is what a new
subscription's snapshots are rendered from: subscribing and publishing both run on the event
loop without awaiting in between, so a snapshot and the updates after it always join up. A feed
given a delay (:mod:`streaming.simulator.lead_lag`) publishes the tape that far behind, its
snapshots included.

The book of a depth-``D`` subscriber is the ``D`` best levels of each side of the synthetic
book (:mod:`streaming.simulator.synthetic_book`: one level per tick from the top out). An update
sends every level of the new ``D`` best whose quantity the subscriber does not hold yet and a
zero for every level it holds that is gone from the book; levels that merely fall below the
``D`` best are not sent: Kraken's subscribers cut their books to the depth themselves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from streaming.simulator import synthetic_book as book
from streaming.simulator.binance.streams import StreamHub
from streaming.simulator.kraken import frames
from streaming.simulator.kraken.frames import DayStats, Level, Pair, TradeRow
from streaming.simulator.live import SyntheticLiveFeed
from streaming.simulator.synthetic_book import ASK, BID, BookState
from streaming.simulator.tape import E8, US_PER_DAY, DayTape

TapeLoader = Callable[[str, dt.date], Awaitable[DayTape]]
"""Loads one symbol-day's tape off the event loop."""

BOOK_DEPTHS = (10, 25, 100, 500, 1000)  # the depths Kraken serves
TICKER_TRIGGERS = ("bbo", "trades")
TRADE_SNAPSHOT = 50  # trades in a trade snapshot
_ONE_DAY = dt.timedelta(days=1)
SideView = tuple[np.ndarray, np.ndarray]
"""One side of a book at a depth: prices in ticks and quantities in lot steps, best first."""


def stream_name(channel: str, pair: str, option: int | str | None = None) -> str:
    """The hub stream of a channel of a pair: ``trade:BTC/USD``, ``ticker:BTC/USD:bbo`` (with
    its event trigger), ``book:BTC/USD:10`` (with its depth)."""
    return f"{channel}:{pair}" if option is None else f"{channel}:{pair}:{option}"


def side_view(state: BookState, side: int, depth: int) -> SideView:
    """The ``depth`` best levels of one side of ``state`` (bids stop at the one-tick price)."""
    top = state.top(side)
    if side == BID:
        ticks = np.arange(top, max(0, top - depth), -1, dtype=np.int64)
    else:
        ticks = np.arange(top, top + depth, dtype=np.int64)
    steps = book.resting_steps(ticks, side).astype(np.int64)
    if steps.size:
        steps[0] = state.top_size(side)
    return ticks, steps


def view_lists(view: SideView) -> tuple[list[int], list[int]]:
    """A side's ticks and steps as Python ints."""
    return view[0].tolist(), view[1].tolist()


def rendered(pair: Pair, view: SideView) -> list[Level]:
    """A side's levels as Kraken writes them."""
    return [(pair.price(t), pair.qty(s)) for t, s in zip(*view_lists(view), strict=True)]


def side_changes(pair: Pair, before: SideView, after: SideView, side: int) -> list[Level]:
    """What a subscriber holding ``before`` must be sent to hold ``after``, best first: the new
    quantity of each level that differs, zero for each level removed from the book (not for
    those that only fell below the depth)."""
    held = dict(zip(*view_lists(before), strict=True))
    ticks, steps = view_lists(after)
    worst = ticks[-1] if ticks else 0
    changes: dict[int, int] = {}
    for tick in held:
        inside = tick >= worst if side == BID else tick <= worst
        if inside and tick not in ticks:
            changes[tick] = 0
    for tick, quantity in zip(ticks, steps, strict=True):
        if held.get(tick) != quantity:
            changes[tick] = quantity
    order = sorted(changes, reverse=side == BID)
    return [(pair.price(tick), pair.qty(changes[tick])) for tick in order]


def _window(tape: DayTape, start_us: int, end: int) -> slice:
    """The trades of ``tape`` after ``start_us``, up to index ``end`` (excluded)."""
    first = int(np.searchsorted(tape.trade_time_us, start_us, side="right"))
    return slice(first, max(first, end))


@dataclass
class PairMarket:
    """One pair as published so far: its tapes (``previous`` is the day before ``tape``, None
    before the listing date), the fills that happened (``tape``'s first ``traded``), the book
    they left and when it last changed (µs)."""

    pair: Pair
    tape: DayTape
    previous: DayTape | None
    traded: int
    state: BookState
    time_us: int
    _cumulative: dict[tuple[dt.date, str], np.ndarray] = field(default_factory=dict, repr=False)

    def advance(self, tape: DayTape) -> None:
        """Move on to the next day's tape."""
        if tape is not self.tape:
            self.previous, self.tape, self.traded = self.tape, tape, 0
            kept = self.previous.day
            self._cumulative = {k: v for k, v in self._cumulative.items() if k[0] == kept}

    def recent_trades(self, count: int = TRADE_SNAPSHOT) -> list[TradeRow]:
        """The last ``count`` trades that happened, oldest first."""
        rows: list[TradeRow] = []
        if self.previous is not None and self.traded < count:
            rows += _rows(self.previous, max(0, self.previous.trade_count - count + self.traded))
        rows += _rows(self.tape, max(0, self.traded - count), self.traded)
        return rows

    def last_ticks(self) -> int:
        """The last trade's price (the day's opening bid before any trade ever)."""
        if self.traded:
            return int(self.tape.trade_price_ticks[self.traded - 1])
        if self.previous is not None and self.previous.trade_count:
            return int(self.previous.trade_price_ticks[-1])
        return self.tape.open_ticks

    def stats(self) -> DayStats:
        """The rolling 24 h figures at the last change: the trades of the 24 h up to it."""
        start_us = self.time_us - US_PER_DAY
        last = self.last_ticks()
        parts = [(self.tape, _window(self.tape, start_us, self.traded))]
        if self.previous is not None:
            window = _window(self.previous, start_us, self.previous.trade_count)
            parts.insert(0, (self.previous, window))
        parts = [(tape, window) for tape, window in parts if window.stop > window.start]
        if not parts:
            return DayStats(last, last, last, last, 0, last * self.pair.tick_e8)
        opening = parts[0][0].trade_price_ticks[parts[0][1].start]
        low = min(int(tape.trade_price_ticks[window].min()) for tape, window in parts)
        high = max(int(tape.trade_price_ticks[window].max()) for tape, window in parts)
        volume = sum(self._total(tape, "qty", window) for tape, window in parts)
        quote_e8 = sum(self._total(tape, "quote", window) for tape, window in parts)
        vwap_e8 = quote_e8 * E8 // (volume * self.pair.step_e8) if volume else 0
        return DayStats(last, int(opening), low, high, volume, vwap_e8)

    def _total(self, tape: DayTape, column: str, window: slice) -> int:
        """The sum of a column (``qty`` in lot steps, ``quote`` in 1e-8) over ``window`` of
        ``tape``, from cumulative sums kept per tape."""
        key = (tape.day, column)
        sums = self._cumulative.get(key)
        if sums is None:
            values = tape.trade_qty_steps if column == "qty" else tape.trade_quote_e8
            sums = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
            self._cumulative[key] = sums
        return int(sums[window.stop] - sums[window.start])


def _rows(tape: DayTape, first: int, end: int | None = None) -> list[TradeRow]:
    end = tape.trade_count if end is None else end
    return [
        TradeRow(
            tape.first_trade_id + i,
            int(tape.trade_price_ticks[i]),
            int(tape.trade_qty_steps[i]),
            bool(tape.trade_buyer_maker[i]),
            int(tape.trade_time_us[i]),
        )
        for i in range(first, end)
    ]


class KrakenLiveFeed(SyntheticLiveFeed):
    """Publishes Kraken's ``trade``, ``ticker`` and ``book`` updates in market time (see the
    module's docstring); ``markets`` (by pair name) are ready once ``ready`` is set."""

    def __init__(
        self,
        pairs: Mapping[str, Pair],
        load_tape: TapeLoader,
        clock_ns: Callable[[], int],
        listing_date: dt.date,
        delay_us: int = 0,
    ) -> None:
        symbols = [pair.symbol for pair in pairs.values()]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"two pairs trade the same synthetic symbol: {sorted(pairs)}")
        super().__init__(symbols, load_tape, clock_ns, delay_us)
        self._pairs_by_symbol = {pair.symbol: pair for pair in pairs.values()}
        self._listing_date = listing_date
        self.markets: dict[str, PairMarket] = {}
        self.ready = asyncio.Event()
        self.checksums_to_corrupt = 0
        self.checksums_corrupted = 0

    async def _cursor(self, symbol, now_us):
        cursor = await super()._cursor(symbol, now_us)
        pair = self._pairs_by_symbol[symbol]
        day_before = cursor.tape.day - _ONE_DAY
        previous = None
        if day_before >= self._listing_date:
            previous = await self._load_tape(symbol, day_before)
        tape, order = cursor.tape, cursor.next_order
        traded = tape.trade_count if order >= tape.order_count else tape.order_first_trade[order]
        changed_us = int(tape.order_time_us[order - 1]) if order else now_us
        self.markets[pair.name] = PairMarket(
            pair, tape, previous, int(traded), cursor.book_state, changed_us
        )
        if len(self.markets) == len(self._pairs_by_symbol):
            self.ready.set()
        return cursor

    async def _publish_order(self, hub: StreamHub, cursor, order: int) -> None:
        # Never awaits (the hub's publish does not block): see the module's docstring.
        market = self.markets[self._pairs_by_symbol[cursor.symbol].name]
        market.advance(cursor.tape)
        tape, pair = market.tape, market.pair
        first, fills = int(tape.order_first_trade[order]), int(tape.order_fill_count[order])
        before, after = market.state, book.state_after(tape, order)
        market.traded, market.state = first + fills, after
        market.time_us = int(tape.trade_time_us[first])
        cursor.book_state = after
        trades = stream_name("trade", pair.name)
        if hub.wants(trades):
            rows = _rows(tape, first, first + fills)
            await hub.publish(trades, frames.trade_message(pair, "update", rows).encode())
        ticker: bytes | None = None
        for trigger in TICKER_TRIGGERS:
            stream = stream_name("ticker", pair.name, trigger)
            if (trigger == "trades" or _top(before) != _top(after)) and hub.wants(stream):
                ticker = ticker or ticker_json(market, "update").encode()
                await hub.publish(stream, ticker)
        await self._publish_book(hub, market, before, after)

    async def _publish_book(
        self, hub: StreamHub, market: PairMarket, before: BookState, after: BookState
    ) -> None:
        pair = market.pair
        updates: list[tuple[int, list[Level], list[Level]]] = []
        for depth in BOOK_DEPTHS:
            if before != after and hub.wants(stream_name("book", pair.name, depth)):
                bids, asks = (
                    side_changes(pair, side_view(before, s, depth), side_view(after, s, depth), s)
                    for s in (BID, ASK)
                )
                if bids or asks:
                    updates.append((depth, bids, asks))
        if not updates:
            return
        top = [rendered(pair, side_view(after, s, frames.CHECKSUM_LEVELS)) for s in (BID, ASK)]
        checksum = frames.book_checksum(*top)
        if self.checksums_to_corrupt > 0:  # a fault: this update lies, to every depth
            self.checksums_to_corrupt -= 1
            self.checksums_corrupted += 1
            checksum = (checksum + 1) % 2**32
        for depth, bids, asks in updates:
            update = frames.book_update(pair, bids, asks, checksum, market.time_us)
            await hub.publish(stream_name("book", pair.name, depth), update.encode())

    async def _publish_depth(self, hub: StreamHub, cursor, now_us: int) -> None:
        return  # Kraken has no depth interval: the book is published with each order


def _top(state: BookState) -> tuple[int, int, int, int]:
    return state.bid_ticks, state.bid_steps, state.ask_ticks, state.ask_steps


def ticker_json(market: PairMarket, kind: frames.MessageType) -> str:
    """A pair's ``ticker`` message as of its last change."""
    state = market.state
    return frames.ticker_message(
        market.pair,
        kind,
        (state.bid_ticks, state.bid_steps),
        (state.ask_ticks, state.ask_steps),
        market.stats(),
        market.time_us,
    )


def book_snapshot_json(market: PairMarket, depth: int) -> str:
    """A pair's ``book`` snapshot at ``depth`` as of its last change."""
    pair, state = market.pair, market.state
    bids, asks = (rendered(pair, side_view(state, side, depth)) for side in (BID, ASK))
    return frames.book_snapshot(pair, bids, asks, frames.book_checksum(bids, asks))


def trade_snapshot_json(market: PairMarket) -> str:
    """A pair's ``trade`` snapshot: its last 50 trades."""
    return frames.trade_message(market.pair, "snapshot", market.recent_trades())
