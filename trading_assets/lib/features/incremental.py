"""Live twin of the batch features: O(1) (amortised) per bar interval, plain Python, no polars.

:class:`IncrementalFeatures` is stepped once per bar interval of one symbol, in time order, with the
interval's bar (or None when it had no trade) and the book quote in force at the interval's end.
It performs exactly the float operations of :mod:`trading_assets.lib.features.batch` in the same
order, so live and batch values are bit-identical on the same bars (see ``definitions``):

* integer window sums: cumulative integer totals in a ring buffer, window = total now − total n bars
  ago (Python integers: exact, no overflow, no drift over any session length);
* float window sums: :class:`BlockWindowSum` (prefix of this block + suffix of the previous one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from trading_assets.lib.features.definitions import (
    BOOK,
    DEFAULT_CONFIG,
    FLOW,
    PRICE,
    SPREAD_BPS_FACTOR,
    TRADE_GROUPS,
    US_PER_SECOND,
    FeatureConfig,
    feature_names,
    own_groups,
    to_units,
)


@dataclass(slots=True)
class Bar:
    """One bar interval with at least one trade (the lakehouse bar columns, times in UTC µs)."""

    symbol: str
    bar_start_us: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float
    buy_volume: float
    sell_volume: float
    trade_count: int
    first_trade_id: int
    last_trade_id: int

    @property
    def vwap(self) -> float:
        return self.notional / self.volume


class Quote(NamedTuple):
    """Best bid and ask (prices and quantities) from the last book ticker."""

    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float


class FeatureRow(NamedTuple):
    """Features of one symbol at one event timestamp (end of a bar interval, UTC µs)."""

    symbol: str
    event_timestamp_us: int
    values: dict[str, float | None]


class BlockWindowSum:
    """Sum of the last ``n`` values pushed, computed as the batch path does (see definitions).

    Values arrive once per bar with the bar's epoch-aligned index. The previous block's suffix sums
    are computed when a block completes: O(n) once every n pushes, O(1) amortised.
    """

    __slots__ = ("_block", "_n", "_prefix", "_suffix", "_values")

    def __init__(self, n: int) -> None:
        self._n = n
        self._block: int | None = None
        self._values = [0.0] * n
        self._suffix = [0.0] * n  # suffix sums of the previous block
        self._prefix = 0.0

    def push(self, abs_bar: int, value: float) -> float:
        """Add the value of bar ``abs_bar`` and return the sum over bars abs_bar−n+1..abs_bar."""
        n = self._n
        block, pos = divmod(abs_bar, n)
        if block != self._block:
            self._start_block(block)
            self._prefix = value
        else:
            self._prefix = self._prefix + value
        self._values[pos] = value
        if pos == n - 1:
            return self._prefix
        return self._suffix[pos + 1] + self._prefix

    def _start_block(self, block: int) -> None:
        suffix = self._suffix
        if self._block is not None and block == self._block + 1:
            values = self._values
            total = values[-1]
            suffix[-1] = total
            for j in range(self._n - 2, -1, -1):
                total = values[j] + total
                suffix[j] = total
        else:
            # A jump of more than one block: no window can reach back into the old block.
            suffix[:] = [0.0] * self._n
        self._values = [0.0] * self._n
        self._block = block


class _IntWindows:
    """Exact window sums of several integer series: ring of cumulative totals."""

    __slots__ = ("_ring", "_size", "_totals")

    def __init__(self, columns: int, longest: int) -> None:
        self._size = longest + 1
        self._totals = [0] * columns
        self._ring: list[tuple[int, ...]] = [(0,) * columns] * self._size

    def push(self, index: int, values: Sequence[int]) -> None:
        """Add step ``index``'s values to the running totals."""
        totals = self._totals
        for c, v in enumerate(values):
            totals[c] += v
        self._ring[index % self._size] = tuple(totals)

    def bounds(self, index: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Totals after step ``index`` and after step ``index − n`` (requires index ≥ n): a
        column's window sum over steps index−n+1..index is their difference."""
        return self._ring[index % self._size], self._ring[(index - n) % self._size]


_VOLUME, _NOTIONAL, _BUY, _SELL, _COUNT, _BOOK_MISSING = range(6)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


class IncrementalFeatures:
    """Features of one symbol, one step per bar interval (empty intervals included)."""

    def __init__(
        self,
        symbol: str,
        config: FeatureConfig = DEFAULT_CONFIG,
        groups: Sequence[str] = TRADE_GROUPS,
        bar_s: int = 1,
    ) -> None:
        self.symbol = symbol
        self.config = config
        self.groups = own_groups(groups)
        self.bar_s = bar_s
        self.names = feature_names(config, self.groups)
        self._bar_us = bar_s * US_PER_SECOND
        self._windows = tuple(zip(config.windows_s, config.bars_per_window(bar_s), strict=True))
        longest = max(n for _, n in self._windows)
        self._ring_size = longest + 1
        self._closes = [0.0] * self._ring_size
        self._ints = _IntWindows(6, longest)
        self._squared_returns = [BlockWindowSum(n) for _, n in self._windows]
        self._book_samples = [BlockWindowSum(n) for _, n in self._windows]
        self._index = -1
        self._next_start_us: int | None = None
        self._close = math.nan

    @property
    def next_bar_start_us(self) -> int | None:
        """Start of the interval the next step must be for (None before the first bar)."""
        return self._next_start_us

    def step(self, bar_start_us: int, bar: Bar | None, quote: Quote | None) -> FeatureRow:
        """Advance by one interval (``bar`` None when it had no trade); features at its end."""
        if self._next_start_us is None:
            if bar is None:
                raise ValueError("the first step needs a bar: the series starts at its first trade")
        elif bar_start_us != self._next_start_us:
            raise ValueError(
                f"step for {bar_start_us} but the next interval is {self._next_start_us}"
            )
        self._next_start_us = bar_start_us + self._bar_us
        self._index += 1
        i = self._index
        previous_close = self._close
        if bar is not None:
            self._close = bar.close
            flows = (to_units(bar.buy_volume), to_units(bar.sell_volume), bar.trade_count)
            units = (to_units(bar.volume), to_units(bar.notional), *flows)
        else:
            units = (0, 0, 0, 0, 0)
        close = self._close
        self._closes[i % self._ring_size] = close
        log_return = math.log(close / previous_close) if i > 0 else 0.0
        imbalance = None
        if quote is not None:
            imbalance = _ratio(quote.bid_qty - quote.ask_qty, quote.bid_qty + quote.ask_qty)
        self._ints.push(i, (*units, 1 if imbalance is None else 0))

        abs_bar = bar_start_us // self._bar_us
        # Each window's ring totals looked up once per step for every group (None in warm-up).
        sums = [self._ints.bounds(i, n) if i >= n else None for _, n in self._windows]
        values: list[float | None] = []
        if PRICE in self.groups:
            values += self._price(i, abs_bar, close, log_return * log_return, sums)
        if FLOW in self.groups:
            values += self._flow(sums)
        if BOOK in self.groups:
            values += self._book(abs_bar, quote, imbalance, sums)
        return FeatureRow(
            self.symbol, self._next_start_us, dict(zip(self.names, values, strict=True))
        )

    def _price(self, i: int, abs_bar: int, close: float, squared_return: float, sums: list) -> list:
        vwaps, devs, rvs, moms = [], [], [], []
        closes, size = self._closes, self._ring_size
        windows = zip(self._windows, self._squared_returns, sums, strict=True)
        for (_, n), squares, window in windows:
            sum_squares = squares.push(abs_bar, squared_return)
            if window is None:
                for out in (vwaps, devs, rvs, moms):
                    out.append(None)
                continue
            now, then = window
            notional, volume = now[_NOTIONAL] - then[_NOTIONAL], now[_VOLUME] - then[_VOLUME]
            vwap = _ratio(float(notional), float(volume))
            vwaps.append(vwap)
            devs.append(None if vwap is None else math.log(close / vwap))
            rvs.append(math.sqrt(sum_squares))
            moms.append(math.log(close / closes[(i - n) % size]))
        return [*vwaps, *devs, *rvs, *moms]

    def _flow(self, sums: list) -> list:
        imbalances, intensities = [], []
        for (w, _), window in zip(self._windows, sums, strict=True):
            if window is None:
                imbalances.append(None)
                intensities.append(None)
                continue
            now, then = window
            buy, sell = now[_BUY] - then[_BUY], now[_SELL] - then[_SELL]
            imbalances.append(_ratio(float(buy - sell), float(buy + sell)))
            intensities.append(float(now[_COUNT] - then[_COUNT]) * (1.0 / w))
        return [*imbalances, *intensities]

    def _book(self, abs_bar: int, quote: Quote | None, imbalance: float | None, sums: list) -> list:
        if quote is None:
            point: list[float | None] = [None, None, None]
        else:
            spread = quote.ask_price - quote.bid_price
            total = quote.ask_price + quote.bid_price
            micro = None if imbalance is None else spread * imbalance / total
            point = [imbalance, micro, SPREAD_BPS_FACTOR * spread / total]
        sample = 0.0 if imbalance is None else imbalance
        windowed: list[float | None] = []
        windows = zip(self._windows, self._book_samples, sums, strict=True)
        for (_, n), samples, window in windows:
            total_imbalance = samples.push(abs_bar, sample)
            complete = window is not None and window[0][_BOOK_MISSING] == window[1][_BOOK_MISSING]
            windowed.append(total_imbalance * (1.0 / n) if complete else None)
        return point + windowed
