"""bootstrap's waits: for the runs of the backfill it launched, and for dagster dev's daemon."""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun
from dagster._daemon.types import DaemonHeartbeat

from trading_assets.bootstrap import (
    BACKFILL_JOB,
    BACKFILL_TAG,
    RUN_DAEMON,
    daemon_beating,
    history_days,
    training_days,
    wait_for_backfill,
)
from trading_assets.lib.feature_store.training import newest_days

SUCCESS, FAILURE, STARTED = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.STARTED,
)


def add_backfill_run(instance: dg.DagsterInstance, backfill_id: str, status) -> None:
    instance.add_run(
        DagsterRun(job_name=BACKFILL_JOB, status=status, tags={BACKFILL_TAG: backfill_id})
    )


def test_runs_of_an_earlier_backfill_do_not_end_the_wait():
    # Arrange: an earlier backfill finished two runs; ours has one of two done
    instance = dg.DagsterInstance.ephemeral()
    add_backfill_run(instance, "earlier", SUCCESS)
    add_backfill_run(instance, "earlier", SUCCESS)
    add_backfill_run(instance, "ours", SUCCESS)
    add_backfill_run(instance, "ours", STARTED)

    # Act / Assert
    with pytest.raises(TimeoutError):
        wait_for_backfill(instance, "ours", expected=2, timeout_s=0.1)


def test_the_wait_ends_when_our_runs_are_done_and_counts_their_successes():
    # Arrange
    instance = dg.DagsterInstance.ephemeral()
    add_backfill_run(instance, "earlier", SUCCESS)
    add_backfill_run(instance, "ours", SUCCESS)
    add_backfill_run(instance, "ours", FAILURE)

    # Act
    succeeded = wait_for_backfill(instance, "ours", expected=2, timeout_s=5)

    # Assert
    assert succeeded == 1


def test_only_a_recent_run_queue_heartbeat_means_the_daemon_is_up():
    # Arrange
    instance = dg.DagsterInstance.ephemeral()
    now = time.time()
    before = daemon_beating(instance, now)

    # Act
    instance.add_daemon_heartbeat(DaemonHeartbeat(now - 5.0, RUN_DAEMON, "daemon-1"))

    # Assert
    assert not before
    assert daemon_beating(instance, now)
    assert not daemon_beating(instance, now + 3600)


@pytest.mark.parametrize("days", [1, 3])
def test_the_first_training_set_keeps_every_backfilled_day_beside_todays_live_gold(days: int):
    today = dt.date(2026, 3, 2)
    backfilled = set(history_days(days, today))

    # The live pickup exports today's gold while the backfill runs, or it has not yet.
    with_today = newest_days({*backfilled, today}, training_days(days))
    without_today = newest_days(backfilled, training_days(days))

    assert with_today == {*backfilled, today}
    assert without_today == backfilled
