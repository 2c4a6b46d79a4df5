"""Live twin of the cross-venue features: O(1) (amortised) per record, plain Python, no polars.

:class:`IncrementalCrossFeatures` is stepped once per own bar interval, in time order, with the
own bar (None when the interval had no trade), the reference's close carried to the interval's
end, the reference's taker flows of the interval and the funding rate in force. It performs the
float operations of :mod:`trading_assets.lib.features.cross_venue` in the same order, so values
are bit-identical on the same bars.

:class:`LiveCrossFeatures` takes the records of both instruments as they arrive, in receive
order: trades (bucketed into bars by their venue's trade time, as the lakehouse bars are), book
tickers (they only move the receive clock on) and funding rates. When is own interval
``[s, s + L)`` complete? When its own trades are all in (an own trade at or after ``s + L`` has
arrived), so are the reference's (a reference trade at or after ``s + L`` has arrived: each
venue sends its trades in time order, but the two venues' clocks and delays differ, so a lagging
reference holds the own row back until it catches up), and, for a pair with a perpetual, every
funding rate received up to ``s + L`` is in (a message received after ``s + L`` has arrived).
Without messages, :meth:`LiveCrossFeatures.advance_to` closes intervals of both by the caller's
clock; a trade for an interval already closed is counted in ``late_trades`` and dropped.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from trading_assets.lib.features.cross_venue import (
    BASIS_FACTOR,
    CrossPair,
    FundingRateLike,
    cross_feature_names,
)
from trading_assets.lib.features.definitions import (
    DEFAULT_CONFIG,
    US_PER_SECOND,
    FeatureConfig,
    to_units,
)
from trading_assets.lib.features.incremental import Bar, BlockWindowSum, FeatureRow
from trading_assets.lib.features.live import BarBuilder, TradeLike

MAX_PENDING = 100_000
"""Reference bars or funding rates kept waiting for the own series; the oldest beyond it are
folded into the carried state (only the newest before an own interval's end matters)."""


class InstrumentTradeLike(TradeLike, Protocol):
    """A trade that names its instrument (``streaming.records.Trade`` does)."""

    @property
    def instrument(self) -> str: ...


class ReceivedLike(Protocol):
    """Any record: only its receive time is read (book tickers move the receive clock on)."""

    @property
    def receive_ns(self) -> int: ...


_BUY, _SELL, _BASIS_MISSING = range(3)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


class IncrementalCrossFeatures:
    """Cross features of one own instrument, one step per own bar interval (empty ones too)."""

    def __init__(self, symbol: str, config: FeatureConfig = DEFAULT_CONFIG, bar_s: int = 1) -> None:
        self.symbol = symbol
        self.config = config
        self.bar_s = bar_s
        self.names = cross_feature_names(config)
        self._bar_us = bar_s * US_PER_SECOND
        self._windows = config.bars_per_window(bar_s)
        self._size = max(self._windows) + 1
        self._closes = [0.0] * self._size
        self._ref_closes: list[float | None] = [None] * self._size
        # Cumulative totals after each step (taker buy, taker sell, null basis samples).
        self._totals: list[tuple[int, int, int]] = [(0, 0, 0)] * self._size
        self._basis_sums = [BlockWindowSum(n) for n in self._windows]
        self._index = -1
        self._next_start_us: int | None = None
        self._close = math.nan

    @property
    def next_bar_start_us(self) -> int | None:
        """Start of the interval the next step must be for (None before the first bar)."""
        return self._next_start_us

    def step(
        self,
        bar_start_us: int,
        bar: Bar | None,
        ref_close: float | None,
        ref_flows: tuple[int, int],
        funding: float | None,
    ) -> FeatureRow:
        """Advance by one own interval; ``ref_flows`` are the reference's taker buy and sell
        volumes of the interval in 1e-8 units. Returns the features at the interval's end."""
        if self._next_start_us is None:
            if bar is None:
                raise ValueError("the first step needs a bar: the series starts at its first trade")
        elif bar_start_us != self._next_start_us:
            raise ValueError(
                f"step for {bar_start_us} but the next interval is {self._next_start_us}"
            )
        self._next_start_us = bar_start_us + self._bar_us
        self._index += 1
        i, size = self._index, self._size
        buy, sell = ref_flows
        if bar is not None:
            self._close = bar.close
            buy += to_units(bar.buy_volume)
            sell += to_units(bar.sell_volume)
        close = self._close
        self._closes[i % size] = close
        self._ref_closes[i % size] = ref_close
        basis = None if ref_close is None else math.log(close / ref_close) * BASIS_FACTOR
        before = self._totals[(i - 1) % size] if i > 0 else (0, 0, 0)
        now = (before[_BUY] + buy, before[_SELL] + sell, before[_BASIS_MISSING] + (basis is None))
        self._totals[i % size] = now

        abs_bar = bar_start_us // self._bar_us
        sample = 0.0 if basis is None else basis
        means: list[float | None] = []
        leads: list[float | None] = []
        gaps: list[float | None] = []
        imbalances: list[float | None] = []
        for n, sums in zip(self._windows, self._basis_sums, strict=True):
            total_basis = sums.push(abs_bar, sample)
            if i < n:
                for out in (means, leads, gaps, imbalances):
                    out.append(None)
                continue
            then = self._totals[(i - n) % size]
            complete = now[_BASIS_MISSING] == then[_BASIS_MISSING]
            means.append(total_basis * (1.0 / n) if complete else None)
            ref_then = self._ref_closes[(i - n) % size]
            if ref_close is None or ref_then is None:
                leads.append(None)
                gaps.append(None)
            else:
                lead = math.log(ref_close / ref_then)
                leads.append(lead)
                gaps.append(lead - math.log(close / self._closes[(i - n) % size]))
            buys, sells = now[_BUY] - then[_BUY], now[_SELL] - then[_SELL]
            imbalances.append(_ratio(float(buys - sells), float(buys + sells)))
        values = [basis, funding, *means, *leads, *gaps, *imbalances]
        return FeatureRow(
            self.symbol, self._next_start_us, dict(zip(self.names, values, strict=True))
        )


class _Side:
    """One instrument's bars as its trades arrive, and how far its intervals are complete."""

    __slots__ = ("bar_us", "bars", "complete_until_us", "completed")

    def __init__(self, symbol: str, bar_s: int) -> None:
        self.bars = BarBuilder(symbol, bar_s)
        self.bar_us = bar_s * US_PER_SECOND
        self.completed: deque[Bar] = deque()
        self.complete_until_us = 0  # every interval ending at or before this has all its trades

    def add(self, trade: TradeLike) -> bool | None:
        """Take a trade: None when it is late (its interval was closed), else whether it moved
        the completeness on."""
        time_us = trade.trade_ns // 1000
        start = time_us - time_us % self.bar_us
        if start + self.bar_us <= self.complete_until_us:
            return None
        bar = self.bars.add(trade)
        if bar is not None:
            self.completed.append(bar)
        if start > self.complete_until_us:
            self.complete_until_us = start
            return True
        return False

    def close_by(self, time_us: int) -> None:
        """Close the open bar if its interval ended by ``time_us``; all up to it are complete."""
        start = self.bars.open_bar_start_us
        if start is not None and start + self.bar_us <= time_us:
            self.close_open_bar()
        self.complete_until_us = max(self.complete_until_us, time_us)

    def close_open_bar(self) -> None:
        bar = self.bars.close()
        if bar is not None:
            self.completed.append(bar)


class LiveCrossFeatures:
    """Cross features of a pair from both instruments' live records (see the module docstring).

    Records of other instruments are ignored. ``newest_row`` is the last row emitted.
    """

    def __init__(
        self, pair: CrossPair, config: FeatureConfig = DEFAULT_CONFIG, bar_s: int = 1
    ) -> None:
        self.pair = pair
        # Rows name the own instrument by its id, as gold and the online store key it.
        self.features = IncrementalCrossFeatures(pair.own, config, bar_s)
        self._own = _Side(pair.own, bar_s)
        self._ref = _Side(pair.reference, bar_s)
        self._bar_us = bar_s * US_PER_SECOND
        self._funding_of = pair.funding
        self._rates: deque[tuple[int, float]] = deque()  # (receive ns, rate), not yet in force
        self._funding: float | None = None
        self._ref_close: float | None = None
        self._wait_end_us: int | None = None  # an interval waiting for a later message only
        self.last_message_ns = 0
        self._clock_ns = 0
        self.newest_row: FeatureRow | None = None
        self.late_trades = 0

    def on_trade(self, trade: InstrumentTradeLike) -> list[FeatureRow]:
        """Take one trade of either instrument; returns the rows it completed (often none)."""
        moved = self._received(trade)
        instrument = trade.instrument
        if instrument == self.pair.own:
            side = self._own
        elif instrument == self.pair.reference:
            side = self._ref
        else:
            return self._emit() if moved else []
        advanced = side.add(trade)
        if advanced is None:
            self.late_trades += 1
        return self._emit() if advanced or moved else []

    def on_book_ticker(self, ticker: ReceivedLike) -> list[FeatureRow]:
        """Take one book ticker of either instrument: it only moves the receive clock on."""
        return self._emit() if self._received(ticker) else []

    def on_funding_rate(self, rate: FundingRateLike) -> list[FeatureRow]:
        """Take one funding rate: the pair's perpetual's counts from its receive time on."""
        moved = self._received(rate)
        if rate.instrument == self._funding_of:
            self._rates.append((rate.receive_ns, float(rate.funding_rate)))
            if len(self._rates) > MAX_PENDING:
                self._funding = self._rates.popleft()[1]
        return self._emit() if moved else []

    def advance_to(self, time_us: int) -> list[FeatureRow]:
        """Close every interval ending at or before ``time_us`` by the caller's clock."""
        self._own.close_by(time_us)
        self._ref.close_by(time_us)
        self._clock_ns = max(self._clock_ns, (time_us + 1) * 1000)
        return self._emit()

    def flush(self) -> list[FeatureRow]:
        """End of input: close both open bars and emit every own interval up to the last."""
        self._own.close_open_bar()
        self._ref.close_open_bar()
        if not self._own.completed:
            return []
        end = self._own.completed[-1].bar_start_us + self._bar_us
        for side in (self._own, self._ref):
            side.complete_until_us = max(side.complete_until_us, end)
        self._clock_ns = max(self._clock_ns, (end + 1) * 1000)
        return self._emit()

    def _received(self, record: ReceivedLike) -> bool:
        """Note a message's receive time; whether it releases an interval waiting for it."""
        received_ns = record.receive_ns
        if received_ns > self.last_message_ns:
            self.last_message_ns = received_ns
        wait_end = self._wait_end_us
        return wait_end is not None and received_ns // 1000 > wait_end

    def _emit(self) -> list[FeatureRow]:
        self._wait_end_us = None
        rows = self._rows()
        if rows:
            self.newest_row = rows[-1]
        return rows

    def _rows(self) -> list[FeatureRow]:
        rows: list[FeatureRow] = []
        features, own, ref = self.features, self._own.completed, self._ref.completed
        start = features.next_bar_start_us
        if start is None:
            if not own:
                # The own series starts with its open bar, if it has one.
                self._fold_reference(self._own.bars.open_bar_start_us)
                return rows
            start = own[0].bar_start_us
        received_us = max(self.last_message_ns, self._clock_ns) // 1000
        complete_until_us = min(self._own.complete_until_us, self._ref.complete_until_us)
        while True:
            end = start + self._bar_us
            if end > complete_until_us:
                self._fold_reference(start)
                return rows
            if self._funding_of is not None and received_us <= end:
                self._wait_end_us = end
                return rows
            flows = (0, 0)
            while ref and ref[0].bar_start_us <= start:
                bar = ref.popleft()
                self._ref_close = bar.close
                if bar.bar_start_us == start:
                    flows = (to_units(bar.buy_volume), to_units(bar.sell_volume))
            # A rate counts up to the interval's end by its receive time in whole µs.
            before_ns, rates = (end + 1) * 1000, self._rates
            while rates and rates[0][0] < before_ns:
                self._funding = rates.popleft()[1]
            bar = own.popleft() if own and own[0].bar_start_us == start else None
            rows.append(features.step(start, bar, self._ref_close, flows, self._funding))
            start = end

    def _fold_reference(self, start_us: int | None) -> None:
        """Bound the reference bars waiting for the own series: those before its next interval
        count only by their close; beyond MAX_PENDING, the oldest are folded too."""
        ref = self._ref.completed
        while ref and (
            (start_us is not None and ref[0].bar_start_us < start_us) or len(ref) > MAX_PENDING
        ):
            self._ref_close = ref.popleft().close
