"""The loop watch: a blocked event loop shows as lag and a logged stack naming the blocker."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from streaming.loop_watch import LoopWatch


def hold_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # what a blocking call on the loop does to everything else


async def test_a_blocked_loop_is_measured_and_its_stack_logged(caplog):
    registry = CollectorRegistry()
    watch = LoopWatch(registry, interval_s=0.05, stall_s=0.3)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.2)  # a few free-running ticks first

    with caplog.at_level(logging.WARNING, logger="streaming.loop_watch"):
        hold_the_loop_for(0.8)
        await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert registry.get_sample_value("sidecar_event_loop_stalls_total") == 1
    assert watch.last_stack is not None and "hold_the_loop_for" in watch.last_stack
    assert any("event loop blocked" in r.message for r in caplog.records)
    late = registry.get_sample_value("sidecar_event_loop_lag_seconds_bucket", {"le": "0.5"})
    total = registry.get_sample_value("sidecar_event_loop_lag_seconds_count")
    assert total is not None and late is not None and total - late >= 1  # one wake-up > 0.5 s late


async def test_a_free_loop_reports_no_stall():
    registry = CollectorRegistry()
    watch = LoopWatch(registry, interval_s=0.05, stall_s=0.5)
    task = asyncio.create_task(watch.run())
    await asyncio.sleep(0.6)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert registry.get_sample_value("sidecar_event_loop_stalls_total") == 0
    assert (registry.get_sample_value("sidecar_event_loop_lag_seconds_count") or 0) >= 5


def test_the_stall_threshold_must_exceed_the_interval():
    with pytest.raises(ValueError, match="stall_s"):
        LoopWatch(CollectorRegistry(), interval_s=1.0, stall_s=0.5)
