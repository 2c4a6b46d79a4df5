"""A step that failed because a store was unreachable runs again within its run, waiting longer
each time and for a bounded number of times; a step that failed for any other reason does not.
The outage is real: a connection to a port where nothing listens."""

import itertools
import socket
from collections.abc import Callable
from typing import Any

import dagster as dg
import pytest

from trading_assets.defs import store_retries
from trading_assets.defs.store_retries import outage_wait_s, retry_on_store_outage
from trading_assets.servers import LOOPBACK, free_port

pytestmark = pytest.mark.faults


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries at once: what is tested is whether a step retries, not how long it waits."""
    monkeypatch.setattr(store_retries, "FIRST_WAIT_S", 0.0)


def store_call(failing_attempts: int, error: Exception | None = None) -> Callable[[int], None]:
    """A call to a store that fails on the first ``failing_attempts`` attempts: refused by a
    port where nothing listens, or raising ``error``."""
    port = free_port()

    def call(attempt: int) -> None:
        if attempt < failing_attempts:
            if error is not None:
                raise error
            socket.create_connection((LOOPBACK, port), timeout=1).close()

    return call


def attempts_of(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> int:
    return sum(1 for event in result.all_events if event.event_type == kind)


def test_a_step_whose_store_was_unreachable_runs_again_and_succeeds():
    call = store_call(failing_attempts=2)

    @dg.asset
    @retry_on_store_outage
    def bronze(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        call(context.retry_number)
        return dg.MaterializeResult(metadata={"attempt": context.retry_number})

    result = dg.materialize([bronze], raise_on_error=False)

    assert result.success
    assert attempts_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 2
    materialization = result.asset_materializations_for_node("bronze")[0]
    assert materialization.metadata["attempt"].value == 2


def test_a_step_that_failed_for_another_reason_fails_at_once():
    call = store_call(failing_attempts=1, error=ValueError("price is not a decimal on line 7"))

    @dg.asset
    @retry_on_store_outage
    def silver(context: dg.AssetExecutionContext) -> None:
        call(context.retry_number)

    result = dg.materialize([silver], raise_on_error=False)

    assert not result.success
    assert attempts_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 0
    assert attempts_of(result, dg.DagsterEventType.STEP_FAILURE) == 1


def test_a_store_that_stays_away_fails_the_step_after_the_last_retry(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(store_retries, "OUTAGE_RETRIES", 2)
    call = store_call(failing_attempts=10)

    @dg.asset
    @retry_on_store_outage
    def bars(context: dg.AssetExecutionContext) -> None:
        call(context.retry_number)

    result = dg.materialize([bars], raise_on_error=False)

    assert not result.success
    assert attempts_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 2
    assert attempts_of(result, dg.DagsterEventType.STEP_FAILURE) == 1


def test_a_check_that_yields_its_results_runs_again_too():
    call = store_call(failing_attempts=1)

    @dg.asset
    def trades() -> None:
        return None

    @dg.asset_check(asset=trades)
    @retry_on_store_outage
    def no_gaps(context: dg.AssetCheckExecutionContext) -> Any:  # yields its result
        call(context.op_execution_context.retry_number)
        yield dg.AssetCheckResult(passed=True)

    result = dg.materialize([trades, no_gaps], raise_on_error=False)

    assert result.success
    assert attempts_of(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]


def test_each_wait_is_longer_than_the_one_before_up_to_a_bound(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(store_retries, "FIRST_WAIT_S", 5.0)

    waits = [outage_wait_s(n) for n in range(store_retries.OUTAGE_RETRIES)]

    assert waits[0] == 5.0
    growing = waits[: waits.index(store_retries.MAX_WAIT_S)]
    assert all(later > earlier for earlier, later in itertools.pairwise(growing))
    assert max(waits) == store_retries.MAX_WAIT_S
    assert sum(waits) > 180  # a store back within three minutes costs a wait, not a failure
