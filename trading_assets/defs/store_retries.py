"""Steps that failed because a store was unreachable run again; no other failure does.

``@retry_on_store_outage`` goes under an asset's or a check's decorator. When the body raises an
error whose chain shows PostgreSQL, S3, Redis or the MLflow server unreachable
(:func:`trading_assets.lib.store_outages.outage_cause`), the step asks Dagster for a retry within
the same run (``RetryRequested``), waiting half as long again each time, from 5 s up to 30 s
(5, 7.5, 11, 17, 25, then 30 s), twelve retries in all: a store back within a few seconds costs
the step a few seconds, one back within about four minutes costs it a wait, not a failure. Any
other error fails the step at once, as before: a failed gate stays failed, and bad data is not
read again.

The store may be the Dagster instance's own PostgreSQL, where the run records the retry itself: a
retry it cannot record ends its worker. So the step first waits, up to ``INSTANCE_WAIT_S``, until
the instance answers. A worker that ends anyway (the instance stayed away, or went away between
two steps) fails its run, which the instance's run retries take
(``dagster_home/dagster.prod.yaml``).

Dagster's ``RetryPolicy`` cannot tell errors apart, which is why this is a decorator.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

from trading_assets.lib.store_outages import outage_cause

OUTAGE_RETRIES = 12
FIRST_WAIT_S = 5.0
WAIT_GROWTH = 1.5
MAX_WAIT_S = 30.0
INSTANCE_WAIT_S = 120.0
INSTANCE_PROBE_EVERY_S = 2.0

Compute = TypeVar("Compute", bound=Callable[..., Any])


def retry_on_store_outage(compute: Compute) -> Compute:
    """``compute`` (a plain or generator asset or check body), retried on a store outage."""
    if inspect.isgeneratorfunction(compute):

        @functools.wraps(compute)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from compute(*args, **kwargs))
            except Exception as error:
                _retry_if_outage(error)
                raise

        return generator  # type: ignore[return-value]

    @functools.wraps(compute)
    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            return compute(*args, **kwargs)
        except Exception as error:
            _retry_if_outage(error)
            raise

    return function  # type: ignore[return-value]


def outage_wait_s(retry_number: int) -> float:
    """Seconds to wait before attempt ``retry_number + 1``: the first retry waits the least."""
    return min(FIRST_WAIT_S * WAIT_GROWTH**retry_number, MAX_WAIT_S)


def _retry_if_outage(error: Exception) -> None:
    if outage_cause(error) is None:
        return
    context = dg.OpExecutionContext.get()
    _await_instance(context.instance, context.run_id)
    raise dg.RetryRequested(
        max_retries=OUTAGE_RETRIES, seconds_to_wait=outage_wait_s(context.retry_number)
    ) from error


def _await_instance(instance: dg.DagsterInstance, run_id: str) -> None:
    """Until the instance answers (its storage may be the store that went away), at most
    ``INSTANCE_WAIT_S``."""
    deadline = time.monotonic() + INSTANCE_WAIT_S
    while True:
        try:
            instance.get_run_by_id(run_id)
            return
        except Exception:  # its own client retried for seconds already
            if time.monotonic() >= deadline:
                return
            time.sleep(INSTANCE_PROBE_EVERY_S)
