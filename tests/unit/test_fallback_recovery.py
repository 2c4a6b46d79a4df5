"""Going back up the fallback chain: a symbol that fell from fresh data is held at its level
until the data has been back for ``recover_after_s``, while its carried vector follows the fresh
data; a first fresh vector after a start is served at once."""

from __future__ import annotations

import pytest

from streaming.fallback import (
    FallbackController,
    FallbackLevel,
    LiveFeatureTracker,
    LiveFeatureTrackers,
    OnlineRead,
)
from tests.unit.test_fallback import (
    BATCH,
    BUDGETS,
    CONFIG,
    LAST_EVENT_NS,
    NAMES,
    SYMBOL,
    TRADES,
    FixedOnline,
    S,
    book_ticker,
    tracker_fed,
)
from trading_assets.lib.features import TRADE_GROUPS


def test_while_a_recovery_is_held_the_carried_vector_follows_the_fresh_data():
    tracker = tracker_fed(TRADES)
    assert tracker.last_message_ns is not None
    silent_from = tracker.last_message_ns
    online = FixedOnline(BATCH[LAST_EVENT_NS], LAST_EVENT_NS)
    live = LiveFeatureTrackers([tracker])
    controller = FallbackController(
        NAMES, online, live, config=CONFIG, budgets=BUDGETS, last_message=live.last_message_ns
    )
    assert controller.decide(SYMBOL, silent_from + S // 2).level is FallbackLevel.ONLINE
    assert controller.decide(SYMBOL, silent_from + 10 * S).level is FallbackLevel.IMPUTED

    held = []
    for second in range(11, 15):  # the book ticks again, the store follows the clock
        now_ns = silent_from + second * S
        tracker.on_book_ticker(book_ticker(now_ns))
        online.read = OnlineRead(BATCH[LAST_EVENT_NS], now_ns - S // 2, 1e-4)
        held.append(controller.decide(SYMBOL, now_ns + S // 2))

    # Still level 3 (the data is back for less than recover_after_s), but carrying the fresh
    # vectors: half a second old and nearly fully trusted, not the 10 s old one.
    assert [d.level for d in held] == [FallbackLevel.IMPUTED] * len(held)
    assert all(d.age_s == pytest.approx(1.0) for d in held)
    assert held[-1].event_time_ns == silent_from + 13 * S + S // 2
    assert held[-1].confidence_multiplier > 0.9


def test_the_first_fresh_vector_after_a_start_is_served_at_once():
    tracker = LiveFeatureTracker(SYMBOL, CONFIG, TRADE_GROUPS)
    online = FixedOnline(BATCH[LAST_EVENT_NS], LAST_EVENT_NS)
    live = LiveFeatureTrackers([tracker])
    controller = FallbackController(
        NAMES, online, live, config=CONFIG, budgets=BUDGETS, last_message=live.last_message_ns
    )
    before_any_message = controller.decide(SYMBOL, LAST_EVENT_NS)
    tracker.on_book_ticker(book_ticker(LAST_EVENT_NS + S // 10))

    first = controller.decide(SYMBOL, LAST_EVENT_NS + S // 2)

    assert before_any_message.level is FallbackLevel.SAFE
    assert first.level is FallbackLevel.ONLINE  # nothing to recover from: no hold
