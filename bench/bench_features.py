"""Features for one day of 1 s bars × 2 symbols (172,800 bars): batch and incremental.

Bars cover every second (a random walk with random volumes and taker split); the book frame holds
one ticker every 200 ms per symbol (864,000 rows). Each batch side runs in its own child process so
its peak RSS is its own:

* floor: read the bars parquet, sort by (symbol, bar_start) and one plain ``rolling_sum`` of
  volume per window (what any windowed feature must at least do);
* features: read, then ``compute_features`` for price+flow, and for all groups with the book.

The incremental path (``IncrementalFeatures.step``, plain Python) is timed per bar in this process.
Target: batch features for the day ≤ 5 s.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench.harness import REPO_ROOT, peak_rss_mb, run_child

DAY = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
SECONDS = 86_400
SYMBOLS = {"BINANCE:BTCUSDT": 60_000.0, "BINANCE:ETHUSDT": 3_000.0}  # by instrument id
TICKERS_PER_SECOND = 5
INCREMENTAL_BARS = 20_000


def synthetic_day(seed: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars for every second of the day and a book ticker every 200 ms, for both symbols."""
    rng = np.random.default_rng(seed)
    bars, books = [], []
    last = DAY + dt.timedelta(seconds=SECONDS - 1)
    starts = pl.datetime_range(DAY, last, "1s", time_unit="us", eager=True)
    tick_times = pl.datetime_range(DAY, last + dt.timedelta(milliseconds=800), "200ms",
                                   time_unit="us", eager=True)  # fmt: skip
    for symbol, price in SYMBOLS.items():
        close = np.round(price * np.exp(np.cumsum(rng.normal(0, 2e-4, SECONDS))), 2)
        buy = rng.integers(0, 200_000, SECONDS) / 1e5
        sell = rng.integers(1, 200_000, SECONDS) / 1e5
        volume = buy + sell
        bars.append(
            pl.DataFrame(
                {
                    "trade_date": DAY.date(),
                    "instrument": symbol,
                    "bar_start": starts,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "volume": volume,
                    "notional": volume * close,
                    "vwap": close,
                    "buy_volume": buy,
                    "sell_volume": sell,
                    "trade_count": rng.integers(1, 40, SECONDS),
                    "first_trade_id": np.arange(SECONDS),
                    "last_trade_id": np.arange(SECONDS),
                }
            )
        )
        ticks = SECONDS * TICKERS_PER_SECOND
        bid = np.repeat(close, TICKERS_PER_SECOND)
        books.append(
            pl.DataFrame(
                {
                    "instrument": symbol,
                    "time": tick_times,
                    "bid_price": bid,
                    "bid_qty": rng.integers(1, 500_000, ticks) / 1e5,
                    "ask_price": bid + 0.01,
                    "ask_qty": rng.integers(1, 500_000, ticks) / 1e5,
                }
            )
        )
    return pl.concat(bars), pl.concat(books)


def child_floor(bars_path: str) -> dict[str, float]:
    from trading_assets.lib.features import DEFAULT_CONFIG

    start = time.perf_counter()
    bars = pl.read_parquet(bars_path).sort("instrument", "bar_start")
    bars.select(pl.col("volume").rolling_sum(w).alias(f"v{w}") for w in DEFAULT_CONFIG.windows_s)
    return {"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


def child_features(bars_path: str, book_path: str) -> dict[str, float]:
    from trading_assets.lib.features import ALL_GROUPS, compute_features

    start = time.perf_counter()
    bars = pl.read_parquet(bars_path)
    trade_only = compute_features(bars, bar_s=1)
    trade_groups = time.perf_counter() - start
    start = time.perf_counter()
    book = pl.read_parquet(book_path)
    everything = compute_features(bars, groups=ALL_GROUPS, book=book, bar_s=1)
    all_groups = time.perf_counter() - start
    return {
        "trade_groups": trade_groups,
        "all_groups": all_groups,
        "rows": everything.height,
        "columns": everything.width - 2,
        "trade_columns": trade_only.width - 2,
        "rss_mb": peak_rss_mb(),
    }


def incremental_us_per_bar(bars: pl.DataFrame, groups: tuple[str, ...]) -> float:
    """Microseconds per ``IncrementalFeatures.step`` over the first bars of one symbol."""
    from trading_assets.lib.features import Bar, IncrementalFeatures, Quote

    rows = bars.filter(pl.col("instrument") == "BINANCE:BTCUSDT").head(INCREMENTAL_BARS)
    steps = [
        (
            int(r["bar_start"].timestamp()) * 1_000_000,
            Bar(
                "BTCUSDT", int(r["bar_start"].timestamp()) * 1_000_000, r["open"], r["high"],
                r["low"], r["close"], r["volume"], r["notional"], r["buy_volume"],
                r["sell_volume"], r["trade_count"], r["first_trade_id"], r["last_trade_id"],
            ),
            Quote(r["close"], 1.5, r["close"] + 0.01, 0.7),
        )
        for r in rows.iter_rows(named=True)
    ]  # fmt: skip
    features = IncrementalFeatures("BTCUSDT", groups=groups)
    start = time.perf_counter()
    for bar_start, bar, quote in steps:
        features.step(bar_start, bar, quote)
    return (time.perf_counter() - start) / len(steps) * 1e6


def live_us_per_message() -> tuple[int, float] | None:
    """Messages and µs per message of ``LiveFeatures`` (all groups) over the recorded BTCUSDT
    session, frames parsed beforehand; None when ../shared/data is absent."""
    from streaming.recordings import read_recording
    from streaming.venues.binance import BookTicker, Trade, parse_stream_frame
    from trading_assets.lib.features import ALL_GROUPS, LiveFeatures

    root = REPO_ROOT.parent / "shared" / "data" / "binance" / "ws"
    if not root.is_dir():
        return None
    records = [
        record
        for day in ("20240808", "20240809")
        for frame in read_recording(root / f"btcusdt_{day}.txt.gz")
        if not frame.is_rest
        and isinstance(
            record := parse_stream_frame(frame.payload, frame.receive_ns), Trade | BookTicker
        )
    ]
    live = LiveFeatures("BTCUSDT", groups=ALL_GROUPS)
    start = time.perf_counter()
    for record in records:
        if isinstance(record, Trade):
            live.on_trade(record)
        else:
            live.on_book_ticker(record)
    live.flush()
    return len(records), (time.perf_counter() - start) / len(records) * 1e6


def main() -> None:
    bars, book = synthetic_day()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        bars_path, book_path = str(Path(tmp) / "bars.parquet"), str(Path(tmp) / "book.parquet")
        bars.write_parquet(bars_path)
        book.write_parquet(book_path)
        floor = run_child("bench.bench_features", "floor", bars_path)
        batch = run_child("bench.bench_features", "features", bars_path, book_path)
    trade_us = incremental_us_per_bar(bars, ("price", "flow"))
    all_us = incremental_us_per_bar(bars, ("price", "flow", "book"))

    print(f"{bars.height:,} 1 s bars ({len(SYMBOLS)} symbols × 86,400 s), {book.height:,} tickers")
    print(f"{'measure':<44}{'value':>10}")
    print(f"{'floor: read + sort + rolling_sum/window (s)':<44}{floor['seconds']:>10.2f}")
    print(f"{'batch price+flow, read included (s)':<44}{batch['trade_groups']:>10.2f}   ≤ 5 s")
    print(f"{'batch all groups, book read included (s)':<44}{batch['all_groups']:>10.2f}   ≤ 5 s")
    print(f"{'ratio price+flow / floor':<44}{batch['trade_groups'] / floor['seconds']:>10.1f}×")
    print(f"{'output rows × features':<44}{int(batch['rows']):>7,} × {int(batch['columns'])}")
    print(f"{'peak RSS floor (MB)':<44}{floor['rss_mb']:>10.0f}")
    print(f"{'peak RSS features (MB)':<44}{batch['rss_mb']:>10.0f}")
    print(f"{'incremental price+flow (µs per bar)':<44}{trade_us:>10.1f}")
    print(f"{'incremental all groups (µs per bar)':<44}{all_us:>10.1f}")
    live = live_us_per_message()
    if live is None:
        print("live replay: skipped (../shared/data absent)")
    else:
        label = f"live replay, {live[0]:,} trade+ticker msgs (µs/msg)"
        print(f"{label:<44}{live[1]:>10.1f}")


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    result = child_floor(*rest) if kind == "floor" else child_features(*rest)
    print(json.dumps(result))
