"""The quiet extension: how much longer than a busy feed a feed may stay silent, learned from
the silences it showed at the controller's decisions."""

from __future__ import annotations

import pytest

from streaming.fallback.pace import QuietExtension

S = 1_000_000_000
T0 = 1_709_294_400 * S


def extension(window_s: float = 300.0) -> QuietExtension:
    return QuietExtension(base_s=2.0, factor=3.0, cap_s=30.0, window_s=window_s)


def silence(pace: QuietExtension, start_ns: int, seconds: float) -> float:
    """A message at ``start_ns``, then decisions every second of a silence of ``seconds``,
    ended by the next message; returns the extension the first decision after it gets."""
    pace.observe(start_ns, start_ns)
    for k in range(1, int(seconds) + 1):
        pace.observe(start_ns + k * S, start_ns)
    end_ns = start_ns + round(seconds * S) + S // 10
    return pace.observe(end_ns, end_ns)


def test_a_feed_without_history_gets_no_extension():
    pace = extension()

    assert pace.observe(T0, T0) == 0.0
    assert pace.observe(T0 + 10 * S, T0) == 0.0  # the silence under way extends nothing


def test_the_extension_is_factor_times_the_longest_learned_silence_up_to_the_cap():
    pace = extension()

    after_1s = silence(pace, T0, 1.5)
    after_4s = silence(pace, T0 + 10 * S, 4.5)  # within 2 s + 3 s: learned
    after_12s = silence(pace, T0 + 20 * S, 12.0)  # within 2 s + 13.5 s: learned
    shorter = silence(pace, T0 + 40 * S, 1.0)

    assert after_1s == pytest.approx(3.0)
    assert after_4s == pytest.approx(12.0)
    assert after_12s == pytest.approx(30.0)  # 36 s, capped
    assert shorter == pytest.approx(30.0)  # the longest in the window still counts


def test_a_silence_that_outlasted_its_allowance_is_not_learned():
    pace = extension()
    silence(pace, T0, 1.0)  # extension 3 s: 5 s of silence allowed

    after_stall = silence(pace, T0 + 10 * S, 8.0)

    assert after_stall == pytest.approx(3.0)


def test_the_silence_under_way_never_extends_its_own_allowance():
    pace = extension()
    silence(pace, T0, 2.0)
    start_ns = T0 + 10 * S
    pace.observe(start_ns, start_ns)

    during = [pace.observe(start_ns + k * S, start_ns) for k in range(1, 60)]

    assert during == [pytest.approx(6.0)] * len(during)


def test_silences_older_than_the_window_are_forgotten():
    pace = extension(window_s=60.0)
    silence(pace, T0, 1.5)
    silence(pace, T0 + 5 * S, 4.0)
    busy_from = T0 + 15 * S

    # Then a message every half second for two minutes, a decision after each.
    extensions = [
        pace.observe(busy_from + k * S // 2 + 1, busy_from + k * S // 2) for k in range(240)
    ]

    assert extensions[0] == pytest.approx(12.0)
    assert extensions[-1] < 0.01
