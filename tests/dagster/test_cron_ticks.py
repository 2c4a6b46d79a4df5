"""once_per_tick on a two-asset graph: a tick that passes while the previous tick's run is still
going is requested once that run ends, whenever its materialization lands; one that passes
before the upstream is materialized is dropped."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.events import (
    AssetMaterializationPlannedData,
    DagsterEvent,
    DagsterEventType,
    StepMaterializationData,
)
from dagster._core.storage.dagster_run import DagsterRun

from trading_assets.defs.automation import once_per_tick

START = dt.datetime(2026, 3, 2, 0, 1, tzinfo=dt.UTC)
JOB = "frame_job"


@dg.asset
def source() -> None: ...


@dg.asset(deps=[source], automation_condition=once_per_tick("*/5 * * * *"))
def frame() -> None: ...


class Clock:
    """Evaluates the automation at START + minutes on one instance; a request for frame starts a
    run that stays in progress until finish() lands its materialization."""

    def __init__(self) -> None:
        self.definitions = dg.Definitions(assets=[source, frame])
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None
        self.run_id: str | None = None

    def report(self, event_type: DagsterEventType, data, run_id: str) -> None:
        event = DagsterEvent(
            event_type_value=event_type.value, job_name=JOB, event_specific_data=data
        )
        self.instance.report_dagster_event(event, run_id=run_id)

    def tick(self, minutes: int) -> bool:
        """Whether the evaluation at START + minutes requests frame."""
        result = dg.evaluate_automation_conditions(
            defs=self.definitions,
            instance=self.instance,
            cursor=self.cursor,
            evaluation_time=START + dt.timedelta(minutes=minutes),
        )
        self.cursor = result.cursor
        requested = result.get_num_requested(frame.key) == 1
        if requested:
            run = self.instance.add_run(
                DagsterRun(job_name=JOB, status=dg.DagsterRunStatus.STARTED)
            )
            self.run_id = run.run_id
            planned = AssetMaterializationPlannedData(frame.key)
            self.report(DagsterEventType.ASSET_MATERIALIZATION_PLANNED, planned, run.run_id)
        return requested

    def finish(self) -> None:
        """The frame run in progress, if any, materializes frame and succeeds."""
        if self.run_id is None:
            return
        materialized = StepMaterializationData(dg.AssetMaterialization(frame.key))
        self.report(DagsterEventType.ASSET_MATERIALIZATION, materialized, self.run_id)
        self.report(DagsterEventType.RUN_SUCCESS, None, self.run_id)
        self.run_id = None

    def materialize_source(self) -> None:
        self.instance.report_runless_asset_event(dg.AssetMaterialization(source.key))


def test_a_run_ending_just_before_the_tick_is_evaluated_does_not_use_up_the_tick():
    clock = Clock()
    clock.materialize_source()
    assert not clock.tick(0)  # 00:01
    assert clock.tick(5)  # 00:06, past the 00:05 tick
    assert not clock.tick(6)

    # The 00:05 run ends between the evaluation at 00:07 and the first one past 00:10.
    clock.finish()
    past_tick = clock.tick(10)  # 00:11
    clock.finish()
    after = clock.tick(11)

    assert past_tick
    assert not after


def test_a_tick_passing_while_the_previous_run_is_going_is_requested_when_it_ends():
    clock = Clock()
    clock.materialize_source()
    clock.tick(0)  # 00:01
    assert clock.tick(5)  # 00:06, past the 00:05 tick
    assert not clock.tick(6)

    during = clock.tick(10)  # 00:11, past the 00:10 tick: the 00:05 run is still going
    clock.finish()
    ended = clock.tick(11)  # 00:12
    clock.finish()
    after = clock.tick(12)

    assert not during
    assert ended
    assert not after


def test_the_evaluation_after_a_request_counts_a_new_tick():
    # The evaluation after 00:06 sees its request and the 00:10 tick: the request came first.
    clock = Clock()
    clock.materialize_source()
    clock.tick(0)  # 00:01
    assert clock.tick(5)  # 00:06, past the 00:05 tick
    clock.finish()

    next_tick = clock.tick(10)  # 00:11, the next evaluation
    clock.finish()
    after = clock.tick(11)

    assert next_tick
    assert not after


def test_a_tick_passing_before_the_upstream_is_materialized_is_dropped():
    clock = Clock()
    clock.tick(0)  # 00:01
    without_source = clock.tick(5)  # 00:06, past the 00:05 tick
    clock.materialize_source()
    with_source = clock.tick(6)
    next_tick = clock.tick(10)  # 00:11, past the 00:10 tick

    assert not without_source
    assert not with_source
    assert next_tick
