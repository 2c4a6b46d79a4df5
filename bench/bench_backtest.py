"""Backtest rate on a synthetic day: decisions and book diffs replayed per second.

One synthetic day of BTCUSDT (the simulator's market with its planted edge): its depth stream as
the simulator's live server publishes it, recorded by the sidecar's recorder (about 36k diffs and
1,400 snapshots), and a decision every second (86,160) predicting the simulator's own oracle, so
it trades. Timed, best of ``ROUNDS``:

* **backtest, book**: :func:`~trading_assets.lib.backtest.replay.run_backtest` over the day: each
  decision through the served decision path (cost rule, risk engine), each order filled at
  decision + 100 ms by walking the rebuilt book;
* **backtest, bars**: the same with 1 s bars' closes only (no book);
* **floor: book walk**: the book tape alone, read at every decision time (no decisions), the cost
  of keeping the rebuilt book current;
* **peer: vectorized P&L**: the evaluation's own ``policy_pnl`` over the same predictions and
  realized returns (numpy; no risk engine, no fills, no latency), the way a vectorized backtest
  prices a signal.

Events are decisions plus the book diffs applied; "× real time" is the day's 86,400 s over the
time taken.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import numpy as np
import polars as pl

from streaming.simulator.synthetic import SyntheticMarket
from tests.unit.test_book_synthetic_day import synthetic_day_lines
from trading_assets.lib.backtest.market import BarTape, BookTape, MarketTape
from trading_assets.lib.backtest.paper import PaperConfig
from trading_assets.lib.backtest.replay import run_backtest
from trading_assets.lib.book.rebuild import LevelDiff, LevelSnapshot, levels_of
from trading_assets.lib.models.metrics import policy_pnl

ROUNDS = 3
DAY = dt.date(2024, 5, 2)
SYMBOL = "BTCUSDT"
NS = 1_000_000_000


def best_of(work: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Print the backtest rate table."""
    tape, landed_diffs, landed_snapshots = synthetic_day_lines(SyntheticMarket(seed=5), SYMBOL, DAY)
    diffs = [d for d in map(levels_of, landed_diffs) if isinstance(d, LevelDiff)]
    snapshots = [s for s in map(levels_of, landed_snapshots) if isinstance(s, LevelSnapshot)]
    start_us = int(dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp()) * 1_000_000
    at_us = start_us + np.arange(120, 86_400 - 120) * 1_000_000
    now = np.searchsorted(tape.order_time_us, at_us, side="right") - 1
    later = np.searchsorted(tape.order_time_us, at_us + 60_000_000, side="right") - 1
    mid = tape.order_bid_ticks.astype(float) + 0.5
    moves = np.diff(np.log(mid[now]), prepend=np.log(mid[now][0])) ** 2
    window = np.cumsum(moves) - np.concatenate([np.zeros(60), np.cumsum(moves)[:-60]])
    predicted = tape.expected_forward_return(at_us, 60)
    decisions = pl.DataFrame({
        "instrument": SYMBOL, "time_ns": at_us * 1_000, "predicted_return": predicted,
        "spread_bps": 1e4 / mid[now], "rv_60s": np.sqrt(np.maximum(window, 0.0)),
    })  # fmt: skip
    bar_ends = ((at_us + 1_000_000) * 1_000).tolist()
    closes = (mid[now] * tape.instrument.tick_e8 / 1e8).tolist()
    book = MarketTape(book=BookTape(diffs, snapshots))
    bars = MarketTape(bars=BarTape(bar_ends, closes))
    config = PaperConfig()
    realized = np.log(mid[later]) - np.log(mid[now])
    times_ns = (at_us * 1_000).tolist()

    def walk() -> None:
        tape_only = BookTape(diffs, snapshots)
        for t in times_ns:
            tape_only.at(t)

    fills = run_backtest(decisions, {SYMBOL: book}, config).fills.height
    rows = [
        ("backtest, book", best_of(lambda: run_backtest(decisions, {SYMBOL: book}, config))),
        ("backtest, bars", best_of(lambda: run_backtest(decisions, {SYMBOL: bars}, config))),
        ("floor: book walk", best_of(walk)),
        ("peer: vectorized P&L", best_of(lambda: policy_pnl(predicted, realized, 1e4 / mid[now]))),
    ]
    events = decisions.height + len(diffs)
    print(f"backtest of one synthetic day ({decisions.height:,} decisions, {len(diffs):,} book "
          f"diffs, {fills:,} fills on the book), best of {ROUNDS}")  # fmt: skip
    print(f"{'replay':<24}{'seconds':>10}{'events/s':>12}{'× real time':>14}")
    for name, seconds in rows:
        print(f"{name:<24}{seconds:>10.2f}{events / seconds:>12,.0f}{86_400 / seconds:>14,.0f}")
    print("    events: decisions + diffs; the vectorized peer prices the same predictions without")
    print("    a risk engine, fills or latency")


if __name__ == "__main__":
    main()
