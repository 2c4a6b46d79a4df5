"""Fallback levels 1–5 with injected faults, on synthetic trades through the real feature code.

The reference is always the batch definition (``bars_from_trades`` → ``compute_features``) over
the same trades; the in-memory state is a real ``LiveFeatures`` fed trade by trade.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping

import msgspec
import polars as pl
import pytest

from streaming.fallback import (
    FallbackBudgets,
    FallbackController,
    FallbackLevel,
    LiveFeatureTracker,
    LiveFeatureTrackers,
    OnlineRead,
)
from streaming.records import BookTicker, Trade
from streaming.simulator.binance.bulk_format import format_e8
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.lib.features import (
    TRADE_GROUPS,
    FeatureConfig,
    compute_features,
    feature_names,
    trades_frame,
)
from trading_assets.lib.lakehouse.bars import bars_from_trades

CONFIG = FeatureConfig(windows_s=(10, 60))
NAMES = feature_names(CONFIG, TRADE_GROUPS)
SYMBOL = "BTCUSDT"
S = 1_000_000_000
BUDGETS = FallbackBudgets(silver_lookback_s=120.0)


def synthetic_trades(minutes: int) -> list[Trade]:
    """The first minutes of a seeded synthetic day, received 2 ms after they happen."""
    tape = SyntheticMarket(seed=5, trades_per_day=200_000).tape(SYMBOL, dt.date(2024, 3, 1))
    inst = tape.instrument
    end_us = int(tape.trade_time_us[0]) + minutes * 60_000_000
    trades = []
    for k in range(tape.trade_count):
        time_us = int(tape.trade_time_us[k])
        if time_us >= end_us:
            break
        trades.append(
            Trade(
                SYMBOL, tape.first_trade_id + k,
                format_e8(int(tape.trade_price_ticks[k]) * inst.tick_e8),
                format_e8(int(tape.trade_qty_steps[k]) * inst.step_e8),
                bool(tape.trade_buyer_maker[k]), time_us * 1000, time_us * 1000,
                time_us * 1000 + 2_000_000,
            )
        )  # fmt: skip
    return trades


TRADES = synthetic_trades(minutes=4)


def batch_rows(trades: list[Trade]) -> dict[int, dict[str, float | None]]:
    """Batch features by event time (ns)."""
    bars = bars_from_trades(trades_frame(SYMBOL, trades))
    frame = compute_features(bars, CONFIG, TRADE_GROUPS, bar_s=1)
    stamps = frame["event_timestamp"].dt.epoch("ns").to_list()
    return dict(zip(stamps, frame.select(NAMES).to_dicts(), strict=True))


BATCH = batch_rows(TRADES)
LAST_EVENT_NS = max(BATCH)  # end of the bar of the last trade


def tracker_fed(trades: list[Trade], book_after_s: float | None = 0.3) -> LiveFeatureTracker:
    """A tracker fed the trades and then (unless None) one book ticker ``book_after_s`` past
    the end of the last trade's second: the stream's proof that the second is over."""
    tracker = LiveFeatureTracker(SYMBOL, CONFIG, TRADE_GROUPS)
    for trade in trades:
        tracker.on_trade(trade)
    if trades and book_after_s is not None:
        last_ns = trades[-1].trade_ns
        tracker.on_book_ticker(book_ticker(last_ns - last_ns % S + S + round(book_after_s * S)))
    return tracker


class FixedOnline:
    """An online store holding one vector per symbol, read with a given latency."""

    def __init__(self, values: Mapping[str, float | None], event_ns: int, latency_s: float = 1e-4):
        self.read = OnlineRead(values, event_ns, latency_s)

    def __call__(self, symbol: str) -> OnlineRead | None:
        return self.read if symbol == SYMBOL else None


class SilverFrame:
    """Silver-like trades (the silver columns) answering range queries, counting pulls."""

    def __init__(self, trades: list[Trade]):
        self.frame = trades_frame(SYMBOL, trades)
        self.pulls = 0

    def __call__(self, symbol: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        self.pulls += 1
        epoch_ns = pl.col("event_time").dt.epoch("ns")
        return self.frame.filter(
            pl.col("instrument") == symbol, epoch_ns.is_between(start_ns, end_ns)
        )


def assert_matches_batch(vector: Mapping[str, float], expected: Mapping[str, float | None]) -> None:
    for name in vector:
        want = expected[name]
        assert want is not None, f"{name} is still warming up at the compared time"
        assert math.isclose(vector[name], want, rel_tol=1e-9, abs_tol=1e-12), name


def test_level_1_serves_a_fresh_online_vector_in_feature_order():
    event_ns = LAST_EVENT_NS
    online = FixedOnline(BATCH[event_ns], event_ns)
    controller = FallbackController(NAMES, online=online, config=CONFIG, budgets=BUDGETS)

    decision = controller.decide(SYMBOL, event_ns + S // 2)

    assert decision.level is FallbackLevel.ONLINE
    assert list(decision.features) == NAMES
    assert_matches_batch(decision.features, BATCH[event_ns])
    assert decision.age_s == 0.5 and decision.confidence_multiplier == 1.0
    assert decision.can_trade and decision.skipped == ()


@pytest.mark.parametrize(
    ("online_age_s", "latency_s", "why"),
    [(10.0, 1e-4, "old"), (1.0, 0.050, "read took 50.00 ms")],
    ids=["stale-online-vector", "slow-online-read"],
)
def test_level_2_repairs_the_online_vector_from_memory_to_the_batch_values(
    online_age_s, latency_s, why
):
    now_ns = LAST_EVENT_NS + S // 2  # the newest closed interval is the last trade's
    stale_ns = LAST_EVENT_NS - round(online_age_s * S)
    online = FixedOnline(BATCH[stale_ns], stale_ns, latency_s)
    live = LiveFeatureTrackers([tracker_fed(TRADES)])
    controller = FallbackController(NAMES, online, live, config=CONFIG, budgets=BUDGETS)

    decision = controller.decide(SYMBOL, now_ns)

    assert decision.level is FallbackLevel.REPAIRED
    assert decision.event_time_ns == LAST_EVENT_NS
    assert_matches_batch(decision.features, BATCH[LAST_EVENT_NS])
    assert BATCH[stale_ns] != BATCH[LAST_EVENT_NS]  # the correction really changed the vector
    assert why in decision.skipped[0]
    assert decision.confidence_multiplier == BUDGETS.repaired_confidence


def test_level_2_after_a_restart_corrects_the_short_windows_and_carries_the_long_ones():
    # Memory holds only the last 30 s: the 10 s windows are warm, the 60 s ones are not.
    restart_ns = LAST_EVENT_NS - 30 * S
    recent = [t for t in TRADES if t.trade_ns >= restart_ns]
    stale_ns = LAST_EVENT_NS - 5 * S
    online = FixedOnline(BATCH[stale_ns], stale_ns)
    live = LiveFeatureTrackers([tracker_fed(recent)])
    controller = FallbackController(NAMES, online, live, config=CONFIG, budgets=BUDGETS)

    decision = controller.decide(SYMBOL, LAST_EVENT_NS + S // 2)

    assert decision.level is FallbackLevel.REPAIRED
    short = [n for n in NAMES if n.endswith("_10s")]
    long = [n for n in NAMES if n.endswith("_60s")]
    assert_matches_batch({n: decision.features[n] for n in short}, BATCH[LAST_EVENT_NS])
    assert {n: decision.features[n] for n in long} == {n: BATCH[stale_ns][n] for n in long}
    assert f"{len(long)} features carried from online" in decision.reason


def test_level_3_imputes_by_ema_when_online_and_trades_stall_with_decaying_confidence():
    t1, t2 = LAST_EVENT_NS - S, LAST_EVENT_NS
    online = FixedOnline(BATCH[t1], t1)
    tracker = tracker_fed(TRADES)  # its stream stalls after the last trade
    controller = FallbackController(
        NAMES, online, LiveFeatureTrackers([tracker]), config=CONFIG, budgets=BUDGETS
    )
    assert controller.decide(SYMBOL, t1).level is FallbackLevel.ONLINE
    online.read = OnlineRead(BATCH[t2], t2, 1e-4)
    assert controller.decide(SYMBOL, t2).level is FallbackLevel.ONLINE

    later = [controller.decide(SYMBOL, t2 + k * S) for k in (10, 20)]

    assert [d.level for d in later] == [FallbackLevel.IMPUTED, FallbackLevel.IMPUTED]
    alpha = 1 - 2 ** (-1 / BUDGETS.impute_smoothing_half_life_s)
    for name in NAMES:
        first, second = BATCH[t1][name], BATCH[t2][name]
        assert first is not None and second is not None
        expected = first + alpha * (second - first)
        assert math.isclose(later[0].features[name], expected, rel_tol=1e-12), name
    assert later[0].features == later[1].features  # carried unchanged
    assert [d.age_s for d in later] == [10.0, 20.0]
    assert later[0].confidence_multiplier == pytest.approx(0.5)  # one 10 s half-life
    assert later[1].confidence_multiplier == pytest.approx(0.25)
    assert any("live: last message" in s for s in later[0].skipped)


def book_ticker(receive_ns: int) -> BookTicker:
    return BookTicker(SYMBOL, receive_ns, "100.0", "1.0", "100.1", "1.0", receive_ns)


def test_a_silent_feed_ages_even_a_fresh_looking_vector_until_safe_mode_then_recovers():
    tracker = tracker_fed(TRADES)
    assert tracker.last_message_ns is not None
    silent_from = tracker.last_message_ns
    online = FixedOnline(BATCH[LAST_EVENT_NS], LAST_EVENT_NS)
    live = LiveFeatureTrackers([tracker])
    controller = FallbackController(
        NAMES, online, live, config=CONFIG, budgets=BUDGETS, last_message=live.last_message_ns
    )

    def decide_after(silence_s: float):
        now_ns = silent_from + round(silence_s * S)
        # What the sidecar's clock-closed rows did to the store: an event time just behind now.
        online.read = OnlineRead(BATCH[LAST_EVENT_NS], now_ns - S // 2, 1e-4)
        return controller.decide(SYMBOL, now_ns)

    served = decide_after(1.0)
    imputed = decide_after(10.0)
    safe = decide_after(BUDGETS.impute_max_age_s + 5)
    back = []
    for second in range(40, 52):  # the book ticks again every second, no trade
        tracker.on_book_ticker(book_ticker(silent_from + second * S))
        back.append(decide_after(second + 0.5))

    assert served.level is FallbackLevel.ONLINE and served.age_s == pytest.approx(1.0)
    assert imputed.level is FallbackLevel.IMPUTED
    assert imputed.age_s == pytest.approx(10.0)
    assert "online: newest market message 10.0 s old > 2 s" in imputed.skipped
    assert safe.level is FallbackLevel.SAFE and not safe.can_trade
    # Safe mode holds until the data has been back for recover_after_s, then level 1 serves.
    held = [d for d in back if d.now_ns - back[0].now_ns < BUDGETS.recover_after_s * S]
    assert held and all(d.level is FallbackLevel.SAFE for d in held)
    recovery = f"online: back for 0.0 s of the {BUDGETS.recover_after_s:g} s a recovery must last"
    assert recovery in held[0].skipped
    recovered = back[len(held)]
    assert recovered.level is FallbackLevel.ONLINE and recovered.age_s == pytest.approx(0.5)


def test_without_any_message_the_online_vector_is_not_served():
    online = FixedOnline(BATCH[LAST_EVENT_NS], LAST_EVENT_NS)
    live = LiveFeatureTrackers([LiveFeatureTracker(SYMBOL, CONFIG, TRADE_GROUPS)])
    controller = FallbackController(
        NAMES, online, live, config=CONFIG, budgets=BUDGETS, last_message=live.last_message_ns
    )

    decision = controller.decide(SYMBOL, LAST_EVENT_NS)

    assert decision.level is FallbackLevel.SAFE
    assert "online: no market message received for the symbol" in decision.skipped


def replay_with_stall() -> tuple[LiveFeatureTracker, dict]:
    """Feed TRADES with the stream stalled for 10 s after a trade past the first minute: the
    trades of the stall's seconds arrive only then, fetched over REST by the reconnect (in id
    order). The clock advances every 100 ms throughout, as the sidecar's predictor does.
    Returns the tracker and every row it emitted, by event time (ns)."""
    rows: dict[int, dict] = {}

    def keep(emitted) -> None:
        rows.update({r.event_timestamp_us * 1_000: r.values for r in emitted})

    tracker = LiveFeatureTracker(SYMBOL, CONFIG, TRADE_GROUPS)
    # The stall starts right after a trade that another follows within half a second.
    k = next(
        k for k in range(60, len(TRADES)) if TRADES[k + 1].trade_ns - TRADES[k].trade_ns < S // 2
    )
    stall_ns = TRADES[k].receive_ns + 1
    stalled = [t for t in TRADES if stall_ns <= t.receive_ns < stall_ns + 10 * S]
    before = [t for t in TRADES if t.receive_ns < stall_ns]
    after = [t for t in TRADES if t.receive_ns >= stall_ns + 10 * S]
    clock = TRADES[0].receive_ns
    for trade in before:
        while clock < trade.receive_ns:
            keep(tracker.advance(clock))
            clock += S // 10
        keep(tracker.on_trade(trade))
    while clock < stall_ns + 10 * S:  # nothing arrives; the predictor's clock runs on
        keep(tracker.advance(clock))
        clock += S // 10
    for trade in stalled:  # the reconnect's gap fill
        keep(tracker.on_trade(msgspec.structs.replace(trade, receive_ns=clock)))
    for trade in after:
        keep(tracker.on_trade(trade))
        keep(tracker.advance(trade.receive_ns))
    return tracker, rows


def test_a_stalled_feed_closes_no_second_and_gap_filled_trades_count():
    tracker, rows = replay_with_stall()

    compared = [ns for ns in rows if ns in BATCH and all(v is not None for v in BATCH[ns].values())]
    assert tracker.live.late_trades == 0
    assert len(compared) > 150  # the 4 minutes, the stalled seconds included
    for event_ns in compared:
        assert_matches_batch(rows[event_ns], BATCH[event_ns])


def test_nothing_closes_by_the_clock_while_a_trade_gap_is_open():
    tracker = tracker_fed(TRADES[:2000])
    newest = tracker.newest_row
    gap_open = [True]
    tracker.gap_open = lambda: gap_open[0]
    assert tracker.last_message_ns is not None and newest is not None

    held = tracker.advance(tracker.last_message_ns + 5 * S)
    gap_open[0] = False
    closed = tracker.advance(tracker.last_message_ns + 5 * S)

    assert held == [] and tracker.newest_row is not None
    assert closed and closed[0].event_timestamp_us > newest.event_timestamp_us


def test_level_4_after_a_restart_recomputes_the_batch_vector_from_silver():
    silver_end_ns = LAST_EVENT_NS - 20 * S  # silver lags the stream by 20 s
    silver = SilverFrame([t for t in TRADES if t.trade_ns < silver_end_ns])
    controller = FallbackController(
        NAMES, live=LiveFeatureTrackers(), silver=silver, config=CONFIG, budgets=BUDGETS
    )

    decision = controller.decide(SYMBOL, LAST_EVENT_NS)

    assert decision.level is FallbackLevel.SILVER
    assert decision.event_time_ns is not None and decision.event_time_ns <= silver_end_ns
    assert_matches_batch(decision.features, BATCH[decision.event_time_ns])
    assert decision.confidence_multiplier == BUDGETS.silver_confidence
    assert "live: no in-memory state" in decision.skipped


def test_silver_is_pulled_at_most_once_per_retry_period():
    silver = SilverFrame(TRADES)
    controller = FallbackController(NAMES, silver=silver, config=CONFIG, budgets=BUDGETS)

    levels = [controller.decide(SYMBOL, LAST_EVENT_NS + k * S).level for k in range(12)]

    assert set(levels) == {FallbackLevel.SILVER}
    assert silver.pulls == 2  # at +0 s and +10 s (silver_retry_s)


def test_stale_silver_means_safe_mode_and_fresh_data_recovers():
    silver = SilverFrame(TRADES)
    online = FixedOnline(BATCH[LAST_EVENT_NS], LAST_EVENT_NS)
    budgets = FallbackBudgets(silver_lookback_s=120.0, silver_max_age_s=60.0, silver_retry_s=0.0)
    controller = FallbackController(NAMES, online, silver=silver, config=CONFIG, budgets=budgets)
    later_ns = LAST_EVENT_NS + 100 * S  # every source is older than its budget

    safe = controller.decide(SYMBOL, later_ns)
    online.read = OnlineRead(BATCH[LAST_EVENT_NS], later_ns - S, 1e-4)  # the feed is back
    recovered = controller.decide(SYMBOL, later_ns)

    assert safe.level is FallbackLevel.SAFE and not safe.can_trade
    assert safe.confidence_multiplier == 0.0 and safe.age_s == math.inf
    assert all(math.isnan(v) for v in safe.features.values())
    assert "silver: newest bar 100 s old > 60 s" in safe.reason
    assert "online: vector 100.0 s old > 2 s" in safe.reason
    assert recovered.level is FallbackLevel.ONLINE and recovered.can_trade
    assert controller.levels[SYMBOL] is FallbackLevel.ONLINE
    assert controller.level_counts[FallbackLevel.SAFE] == 1


def test_failing_sources_are_recorded_as_reasons_not_raised():
    def unreachable_store(symbol: str) -> OnlineRead | None:
        raise ConnectionError("redis down")

    def broken_catalog(symbol: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        raise OSError("catalog unavailable")

    controller = FallbackController(
        NAMES, unreachable_store, silver=broken_catalog, config=CONFIG, budgets=BUDGETS
    )

    decision = controller.decide(SYMBOL, LAST_EVENT_NS)

    assert decision.level is FallbackLevel.SAFE
    assert "redis down" in decision.reason and "catalog unavailable" in decision.reason


def test_a_vector_still_warming_up_is_not_served():
    first_event_ns = min(BATCH)  # every windowed feature is null at the first bar
    online = FixedOnline(BATCH[first_event_ns], first_event_ns)
    controller = FallbackController(NAMES, online, config=CONFIG, budgets=BUDGETS)

    decision = controller.decide(SYMBOL, first_event_ns)

    assert decision.level is FallbackLevel.SAFE
    assert "online: 0% of features finite" in decision.reason


def test_level_changes_are_logged(caplog):
    online = FixedOnline(BATCH[LAST_EVENT_NS], LAST_EVENT_NS)
    controller = FallbackController(NAMES, online, config=CONFIG, budgets=BUDGETS)

    with caplog.at_level(logging.INFO, logger="streaming.fallback.controller"):
        for offset_s in (0, 1, 100, 101):
            controller.decide(SYMBOL, LAST_EVENT_NS + offset_s * S)

    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "start → level 1" in messages[0] and "level 1 → level 5" in messages[1]


def test_a_lookback_shorter_than_the_longest_window_is_refused():
    with pytest.raises(ValueError, match="longest window"):
        FallbackController(
            NAMES,
            silver=SilverFrame([]),
            config=CONFIG,
            budgets=FallbackBudgets(silver_lookback_s=30.0),
        )
