"""The canary's share of decisions: drawn per (symbol, second), close to the configured share."""

from __future__ import annotations

import pytest

from streaming.trading import canary_drives

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DAY_START = 1_795_910_400  # 2026-11-29 00:00 UTC


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_over_a_day_the_canary_drives_its_share_for_every_symbol(share):
    for symbol in SYMBOLS:
        seconds = range(DAY_START, DAY_START + 86_400)
        drawn = sum(canary_drives(symbol, second, share) for second in seconds) / len(seconds)
        # 86,400 draws: a fair share lands within 0.006 of p at 4 standard deviations.
        assert drawn == pytest.approx(share, abs=0.006)


def test_symbols_are_drawn_independently():
    seconds = range(DAY_START, DAY_START + 86_400)
    both = sum(
        canary_drives("BTCUSDT", second, 0.5) and canary_drives("ETHUSDT", second, 0.5)
        for second in seconds
    ) / len(seconds)
    assert both == pytest.approx(0.25, abs=0.006)
