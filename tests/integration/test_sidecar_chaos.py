"""A small chaos run: a ``python -m streaming`` process against the simulator's fast synthetic
market, its connection cut twice and the process SIGKILLed and restarted once; its landed trades
go through bronze into silver on a tmp Iceberg catalog and match the exchange's trades exactly.
And fuzzed frames through the market feed: no crash, every frame accounted for.

The scenario lives in ``bench/sidecar_chaos.py`` and ``bench/sidecar_fuzz.py`` (the bench runs
the larger version). Most of the chaos test's time is the two sidecar processes starting (their
imports take tens of seconds on a loaded 2-core host).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sidecar_chaos import run_chaos
from bench.sidecar_fuzz import run_fuzz

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(720)
def test_disconnects_and_a_sigkill_restart_lose_and_duplicate_no_trade(tmp_path: Path) -> None:
    result = run_chaos(tmp_path, disconnects=2, kills=1, dwell_s=1.0, trades_per_day=300_000)

    assert result.disconnects >= 2 and result.kills == 1
    assert result.exit_code == 0  # the final SIGTERM shut it down gracefully
    for count in result.symbols:
        assert count.expected > 0, count
        assert count.silver_rows == count.expected, count
        assert (count.lost, count.duplicated, count.extra, count.mismatched) == (0, 0, 0, 0), count
        assert count.landed_duplicates == 0 and count.quarantined == 0, count


@pytest.mark.timeout(60)
async def test_fuzzed_frames_are_all_accounted_for_and_the_bad_ones_dead_lettered(
    tmp_path: Path,
) -> None:
    result = await run_fuzz(tmp_path, 400)

    assert result.crashes == 0
    assert result.received == result.sent
    assert result.dead_lettered == result.expected_bad > 0
    assert result.letters_match  # the dead-letter file holds exactly the rejected frames
    assert result.bad_kinds_all_rejected and result.valid_all_parsed
    assert set(result.by_kind) >= {"random", "truncated", "wrong_type"}
