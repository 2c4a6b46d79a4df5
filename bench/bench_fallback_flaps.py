"""Fallback level changes per hour on healthy feeds: the rules before and after, in one run.

Tapes: the synthetic market as ``trading-sim`` streams it by default (seed 7, 200,000 trades a
day; BTCUSDT and ETHUSDT for ``HOURS`` hours from 2024-03-01 00:00 UTC) and the recorded Binance
sessions in ../shared/data/binance/ws (BTCUSDT and ETHUSDT, 11 minutes each). Each goes through
:class:`streaming.fallback.replay.FallbackReplay`: the sidecar's live features, an online store
and the real controller, deciding every second as the predictor does.

Rules: ``before`` is ``FallbackBudgets(quiet_max_s=0, recover_after_s=0)``: the fixed 2 s / 3 s
age budgets and no recovery hold, which is how the controller decided before both existed;
``no hold`` adds the quiet extension alone; ``now`` is the defaults (extension and hold).

(a) The tapes' silences (no trade and no book ticker), which the defaults are fitted to.
(b) Per tape and rules: level changes per hour, the share of decisions at level 1, the worst
level, and the controller's log lines per hour (one per change plus the first decision).
(c) The same through the sidecar's own online store, Feast's embedded sqlite written by
``OnlineFeatureWriter`` and read by ``OnlineFeatureReader`` (each tick's rows flushed before the
read; read latencies are real), the three rule sets deciding on the same reads.
(d) A stall in the middle of each tape (the connection open, nothing delivered for 12 s or 90 s,
then everything at once): seconds from its start until levels 1 and 2 are lost and until safe
mode, and from its end until level 1 again (a dash: not reached).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from streaming.fallback import FallbackBudgets, FallbackLevel
from streaming.fallback.decision import NS_PER_S, OnlineRead
from streaming.fallback.replay import (
    FallbackReplay,
    Message,
    OnlineStore,
    ReplayResult,
    recorded_messages,
    stalled,
    synthetic_messages,
)
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.lib.features.incremental import FeatureRow

HOURS = 6
FEAST_HOURS = 1
SEED, TRADES_PER_DAY = 7, 200_000  # trading-sim's defaults
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance" / "ws"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
RULES = {
    "before": FallbackBudgets(quiet_max_s=0.0, recover_after_s=0.0),
    "no hold": FallbackBudgets(recover_after_s=0.0),
    "now": FallbackBudgets(),
}
STALLS_S = (12.0, 90.0)
STALL_CONTEXT_S = 1_800.0  # synthetic tape replayed around a stall: enough to learn its pace


class CountedLines(logging.Handler):
    """Counts the controller's log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def tapes() -> dict[str, tuple[str, list[Message]]]:
    """Every tape by name: its symbol and messages."""
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)
    out = {
        f"synthetic {s}": (s, list(synthetic_messages(market, s, START, HOURS * 3_600)))
        for s in SYMBOLS
    }
    for symbol in SYMBOLS:
        paths = sorted(RECORDINGS.glob(f"{symbol.lower()}_2024080*.txt.gz"))
        if paths:
            out[f"recorded {symbol}"] = (symbol, list(recorded_messages(paths, symbol)))
    return out


def print_silences(all_tapes: dict[str, tuple[str, list[Message]]]) -> None:
    print("(a) silences: gaps with no trade and no book ticker")
    print(
        f"{'tape':<20} {'hours':>6} {'>2 s /h':>8} {'>10 s /h':>9} {'>30 s /h':>9} {'longest':>8}"
    )
    for name, (_, messages) in all_tapes.items():
        times = np.unique(np.array([m.receive_ns for m in messages], dtype=np.int64))
        gaps = np.diff(times) / NS_PER_S
        hours = (times[-1] - times[0]) / NS_PER_S / 3_600
        per_hour = [f"{(gaps > limit).sum() / hours:.1f}" for limit in (2, 10, 30)]
        print(
            f"{name:<20} {hours:>6.2f} {per_hour[0]:>8} {per_hour[1]:>9} {per_hour[2]:>9} "
            f"{gaps.max():>7.1f}s"
        )


def replay(
    symbol: str,
    messages: Iterable[Message],
    rules: Sequence[FallbackBudgets],
    store: OnlineStore | None = None,
) -> list[ReplayResult]:
    return FallbackReplay(symbol, rules, store).run(messages)


def result_row(name: str, rules: str, result: ReplayResult, lines: int | None) -> str:
    share = result.levels[FallbackLevel.ONLINE] / max(result.decisions, 1)
    worst = max(result.levels, default=FallbackLevel.ONLINE)
    per_hour = "" if lines is None else f"{lines * 3_600 / max(result.span_s, 1):>10.1f}"
    return (
        f"{name:<20} {rules:<8} {result.changes_per_hour:>10.1f} {share:>9.1%} "
        f"{int(worst):>6} {per_hour}"
    )


def print_changes(all_tapes: dict[str, tuple[str, list[Message]]]) -> None:
    print("\n(b) level changes on the healthy tapes (online store: the newest row pushed)")
    print(f"{'tape':<20} {'rules':<8} {'changes/h':>10} {'level 1':>9} {'worst':>6} {'log/h':>10}")
    logger = logging.getLogger("streaming.fallback.controller")
    for name, (symbol, messages) in all_tapes.items():
        for label, budgets in RULES.items():
            counter = CountedLines()
            logger.addHandler(counter)
            level, propagate = logger.level, logger.propagate
            logger.setLevel(logging.INFO)
            logger.propagate = False
            try:
                (result,) = replay(symbol, messages, [budgets])
            finally:
                logger.removeHandler(counter)
                logger.setLevel(level)
                logger.propagate = propagate
            print(result_row(name, label, result, counter.count))


class FeastOnline:
    """The sidecar's online store: rows through its writer, vectors through its reader."""

    def __init__(self, root: Path) -> None:
        from streaming.config import SidecarConfig
        from streaming.online import OnlineFeatureReader, OnlineFeatureWriter, open_feature_store
        from trading_assets.lib.feature_store.spec import SERVICES

        config = SidecarConfig(tuple(f"BINANCE:{s}" for s in SYMBOLS), "", "", root, None)
        store = open_feature_store(config)
        self.writer = OnlineFeatureWriter(store, views=SERVICES[config.feature_service])
        self.reader = OnlineFeatureReader(store, config.feature_service)
        self.reads = self.slow_reads = 0

    def push(self, rows: Iterable[FeatureRow]) -> None:
        submitted = False
        for row in rows:
            self.writer.submit(row)
            submitted = True
        if submitted:
            self.writer.flush()

    def __call__(self, symbol: str) -> OnlineRead | None:
        read = self.reader.read(symbol)
        self.reads += 1
        if read is not None and read.latency_s > RULES["now"].online_max_latency_s:
            self.slow_reads += 1
        return read

    def close(self) -> None:
        self.writer.close()


def print_feast_changes(all_tapes: dict[str, tuple[str, list[Message]]]) -> None:
    print(
        f"\n(c) the same through Feast's sqlite online store (synthetic: the first "
        f"{FEAST_HOURS} h; the rules decide on the same reads)"
    )
    limit_ms = RULES["now"].online_max_latency_s * 1e3
    print(
        f"{'tape':<20} {'rules':<8} {'changes/h':>10} {'level 1':>9} {'worst':>6} "
        f"{f'reads > {limit_ms:g} ms':>14}"
    )
    for name, (symbol, messages) in all_tapes.items():
        end_ns = messages[0].receive_ns + FEAST_HOURS * 3_600 * NS_PER_S
        window = [m for m in messages if m.receive_ns < end_ns]
        with tempfile.TemporaryDirectory() as tmp:
            store = FeastOnline(Path(tmp))
            try:
                results = replay(symbol, window, list(RULES.values()), store)
            finally:
                store.close()
        slow = f"{store.slow_reads} of {store.reads}"
        for label, result in zip(RULES, results, strict=True):
            print(result_row(name, label, result, None) + f" {slow:>14}")


def seconds_until(
    timeline: list[tuple[int, FallbackLevel]], start_ns: int, end_ns: int, reached
) -> str:
    """Seconds from ``start_ns`` to the first decision before ``end_ns`` whose level meets
    ``reached`` ("-": none)."""
    for now_ns, level in timeline:
        if start_ns <= now_ns < end_ns and reached(level):
            return f"{(now_ns - start_ns) / NS_PER_S:.1f}"
    return "-"


def print_stalls(all_tapes: dict[str, tuple[str, list[Message]]]) -> None:
    print("\n(d) a stall in the middle of each tape: seconds until ...")
    print(
        f"{'tape':<20} {'stall':>6} {'rules':<8} {'lvl 1-2 lost':>13} {'safe mode':>10} "
        f"{'lvl 1 again':>12}"
    )
    for name, (symbol, messages) in all_tapes.items():
        start_ns = (messages[0].receive_ns + messages[-1].receive_ns) // 2
        context_ns = round(STALL_CONTEXT_S * NS_PER_S)
        window = [m for m in messages if abs(m.receive_ns - start_ns) < context_ns]
        for stall_s in STALLS_S:
            end_ns = start_ns + round(stall_s * NS_PER_S)
            results = replay(symbol, stalled(window, start_ns, stall_s), list(RULES.values()))
            for label, result in zip(RULES, results, strict=True):
                timeline = result.timeline
                lost = seconds_until(timeline, start_ns, end_ns, lambda v: v > 2)
                safe = seconds_until(timeline, start_ns, end_ns, lambda v: v == 5)
                again = seconds_until(timeline, end_ns, end_ns + context_ns, lambda v: v == 1)
                print(f"{name:<20} {stall_s:>5.0f}s {label:<8} {lost:>13} {safe:>10} {again:>12}")


def main() -> None:
    """Print the four tables."""
    logging.getLogger("streaming.fallback.controller").setLevel(logging.ERROR)
    all_tapes = tapes()
    if not any(name.startswith("recorded") for name in all_tapes):
        print(f"(no recordings at {RECORDINGS}: synthetic tapes only)")
    print_silences(all_tapes)
    print_changes(all_tapes)
    print_feast_changes(all_tapes)
    print_stalls(all_tapes)


if __name__ == "__main__":
    main()
