"""The fallback level over real tapes: the synthetic market as the simulator streams it and the
recorded Binance sessions, through the sidecar's live features and the real controller
(:mod:`streaming.fallback.replay`). A healthy feed keeps its level through its natural quiet
spells; a stalled one still goes down within the budgets' bounds, and comes back."""

from __future__ import annotations

import datetime as dt
import logging
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from streaming.fallback import FallbackBudgets, FallbackLevel
from streaming.fallback.decision import NS_PER_S
from streaming.fallback.replay import (
    FallbackReplay,
    Message,
    ReplayResult,
    recorded_messages,
    stalled,
    synthetic_messages,
)
from streaming.simulator.synthetic import SyntheticMarket

S = NS_PER_S
BUDGETS = FallbackBudgets()
BEFORE = FallbackBudgets(quiet_max_s=0.0, recover_after_s=0.0)  # fixed budgets, no hold
NO_HOLD = FallbackBudgets(recover_after_s=0.0)
PERIOD_S = 1.0  # the replay's predictor period
HOURS = 2
MAX_CHANGES = HOURS * 12  # one change per five minutes of tape, on average
SYMBOLS = ("BTCUSDT", "ETHUSDT")


@pytest.fixture(scope="module")
def synthetic() -> dict[str, list[Message]]:
    """Two daytime hours of ``trading-sim``'s default market (seed 7, 200,000 trades a day)."""
    market = SyntheticMarket(seed=7, trades_per_day=200_000)
    start = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
    return {s: list(synthetic_messages(market, s, start, HOURS * 3_600)) for s in SYMBOLS}


@pytest.fixture(scope="module")
def recorded(shared_data: Path) -> dict[str, list[Message]]:
    """The recorded Binance sessions (11 minutes of trades and book tickers per symbol)."""
    folder = shared_data / "binance" / "ws"
    return {
        s: list(recorded_messages(sorted(folder.glob(f"{s.lower()}_2024080*.txt.gz")), s))
        for s in SYMBOLS
    }


def silences_s(messages: list[Message]) -> np.ndarray:
    """Every gap between consecutive messages, in seconds."""
    return np.diff(np.unique(np.array([m.receive_ns for m in messages], dtype=np.int64))) / S


def all_changes(result: ReplayResult) -> int:
    """Level changes over the whole replay, the features' warm-up included."""
    return sum(a[1] is not b[1] for a, b in pairwise(result.timeline))


def seconds_until(result: ReplayResult, start_ns: int, reached) -> float:
    """Seconds from ``start_ns`` to the first decision whose level meets ``reached``."""
    return next((t - start_ns) / S for t, got in result.timeline if t >= start_ns and reached(got))


def levels_between(result: ReplayResult, start_ns: int, end_ns: int) -> list[FallbackLevel]:
    return [level for t, level in result.timeline if start_ns <= t < end_ns]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_the_synthetic_market_keeps_its_level_through_its_quiet_spells(synthetic, symbol, caplog):
    messages = synthetic[symbol]

    with caplog.at_level(logging.INFO, logger="streaming.fallback.controller"):
        (now,) = FallbackReplay(symbol, [BUDGETS]).run(messages)
    log_lines = len(caplog.records)
    (before,) = FallbackReplay(symbol, [BEFORE]).run(messages)

    # A healthy but sparse feed: its quiet spells outlast the fixed budgets hundreds of times
    # an hour, and under them the level changed every few seconds.
    assert (silences_s(messages) > BEFORE.live_max_age_s).sum() > 100 * HOURS
    assert before.changes > 500 * HOURS
    # Fitted to the feed's pace, it changes rarely and serves fresh data nearly always.
    assert now.span_s > (HOURS - 0.1) * 3_600
    assert now.changes <= MAX_CHANGES
    assert now.levels[FallbackLevel.ONLINE] / now.decisions > 0.95
    # One log line per change, plus one for the first decision.
    assert log_lines == all_changes(now) + 1


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_recorded_binance_session_stays_at_level_1(recorded, symbol):
    (now,) = FallbackReplay(symbol, [BUDGETS]).run(recorded[symbol])

    assert now.span_s > 500
    assert now.changes == 0 and set(now.levels) == {FallbackLevel.ONLINE}


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_stalled_recording_degrades_within_its_budgets_and_recovers(recorded, symbol):
    messages = recorded[symbol]
    start_ns = (messages[0].receive_ns + messages[-1].receive_ns) // 2
    stall_s = 60.0
    end_ns = start_ns + round(stall_s * S)
    # The most this feed's pace can extend its budgets: it is never silent for long.
    extension_s = BUDGETS.quiet_factor * silences_s(messages).max()

    (now,) = FallbackReplay(symbol, [BUDGETS]).run(stalled(messages, start_ns, stall_s))

    lost_s = seconds_until(now, start_ns, lambda level: level >= FallbackLevel.IMPUTED)
    safe_s = seconds_until(now, start_ns, lambda level: level is FallbackLevel.SAFE)
    back_s = seconds_until(now, end_ns, lambda level: level is FallbackLevel.ONLINE)
    assert extension_s < 3
    assert lost_s <= BUDGETS.live_max_age_s + extension_s + PERIOD_S
    assert safe_s <= BUDGETS.impute_max_age_s + extension_s + PERIOD_S
    down = levels_between(now, start_ns, end_ns)
    assert down == sorted(down) and down[-1] is FallbackLevel.SAFE
    # Back once the data has flowed for recover_after_s, and no sooner.
    assert BUDGETS.recover_after_s <= back_s <= BUDGETS.recover_after_s + PERIOD_S
    assert now.timeline[-1][1] is FallbackLevel.ONLINE


def test_a_stall_on_the_sparse_synthetic_feed_degrades_within_the_cap_and_recovers(synthetic):
    messages = synthetic["BTCUSDT"]
    start_ns = messages[0].receive_ns + 3_600 * S
    stall_s = 120.0
    end_ns = start_ns + round(stall_s * S)

    (now,) = FallbackReplay("BTCUSDT", [BUDGETS]).run(stalled(messages, start_ns, stall_s))

    # However quiet the feed has been, its budgets stretch by quiet_max_s at most.
    lost_s = seconds_until(now, start_ns, lambda level: level >= FallbackLevel.IMPUTED)
    safe_s = seconds_until(now, start_ns, lambda level: level is FallbackLevel.SAFE)
    back_s = seconds_until(now, end_ns, lambda level: level is FallbackLevel.ONLINE)
    assert lost_s <= BUDGETS.live_max_age_s + BUDGETS.quiet_max_s + PERIOD_S
    assert safe_s <= BUDGETS.impute_max_age_s + BUDGETS.quiet_max_s + PERIOD_S
    assert BUDGETS.recover_after_s <= back_s <= BUDGETS.recover_after_s + PERIOD_S


def test_a_feed_stuttering_back_to_life_is_held_down_until_it_has_flowed_a_while(recorded):
    # Five times: nothing for 15 s, then 4 s of data.
    messages = recorded["BTCUSDT"]
    start_ns = messages[0].receive_ns + 300 * S
    stutter = iter(messages)
    for cycle in range(5):
        stutter = stalled(stutter, start_ns + cycle * 19 * S, 15.0)
    stuttering = list(stutter)
    end_ns = start_ns + 5 * 19 * S

    now, no_hold = FallbackReplay("BTCUSDT", [BUDGETS, NO_HOLD]).run(stuttering)

    # Without the hold the level swings with every burst; with it, it goes down once and comes
    # back once the data has flowed for recover_after_s.
    assert no_hold.changes >= 10
    held = levels_between(now, start_ns + 5 * S, end_ns)
    assert FallbackLevel.ONLINE not in held
    assert now.changes <= 3
    assert now.timeline[-1][1] is FallbackLevel.ONLINE
