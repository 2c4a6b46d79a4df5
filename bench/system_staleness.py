"""``bench_system``'s figure 2: data going stale → the staleness sensor → ``staleness_repair``.

Two faults, one after the other, on the running system:

* **Market stall**: the simulator stalls every WebSocket connection (``stall_after_messages=0``,
  the sidecar's watchdog reconnects included) and fails every REST request, so the sidecar's
  gap fill after each reconnect cannot refill the tape either. (A WebSocket stall alone heals
  itself: every reconnect fetches the missed trades over REST, so the online rows never age past
  the watchdog's 30 s.) Measured: stall → the sensor's first tick that judges the rows stale,
  and its decision. Silver holds nothing newer than the online row then (the landing stops with
  the stream), so the sensor declines a repair by design; if it launches one, that run's
  success is the figure.
* **Online store write outage**: the market flows, the sidecar lands trades, but its pushes to
  the online store fail (the bench holds the embedded sqlite store's write lock; reads still
  work). Silver moves ahead of the online rows, the sensor launches ``staleness_repair``, the
  bench releases the lock once the run is requested, and the figure is outage → the run's
  success.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from bench.system_run import Row, RunningSystem, span, wait_for

STALE_AFTER_S = 30  # STALENESS_MAX_AGE_S for the run
STALENESS_INTERVAL_S = 60  # sensors/staleness.py CHECK_INTERVAL_S
SENSOR = "online_staleness"
REPAIR_JOB = "staleness_repair"
DETECT_TIMEOUT_S = STALE_AFTER_S + 3 * STALENESS_INTERVAL_S
REPAIR_RUN_TIMEOUT_S = 360
RECOVERY_S = 60  # the sidecar reconnects (watchdog 30 s) and pushes fresh rows again
REST_OUTAGE = 10**9
FLOOR = f"≥ {STALE_AFTER_S} s threshold; sensor every {STALENESS_INTERVAL_S} s"


def _sensor_state(instance: Any) -> Any:
    return next((s for s in instance.all_instigator_state() if s.instigator_name == SENSOR), None)


def sensor_ticks(instance: Any, after_s: float) -> list[Any]:
    """The staleness sensor's ticks since ``after_s``, oldest first."""
    state = _sensor_state(instance)
    if state is None:
        return []
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after_s)
    return sorted(ticks, key=lambda tick: tick.timestamp)


def judged_stale(tick: Any) -> bool:
    return bool(tick.run_ids) or (tick.skip_reason or "").startswith("stale")


def repair_runs(instance: Any, after_s: float) -> list[Any]:
    import dagster as dg

    since = dt.datetime.fromtimestamp(after_s, dt.UTC)
    return list(
        instance.get_run_records(
            filters=dg.RunsFilter(job_name=REPAIR_JOB, created_after=since), limit=20
        )
    )


def succeeded(records: list[Any]) -> Any:
    import dagster as dg

    done = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
    return min(done, key=lambda r: r.end_time or 0) if done else None


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def market_stall(system: RunningSystem, instance: Any) -> tuple[list[Row], bool]:
    """Rows for the market stall, and whether it launched a repair (then its cooldown holds)."""
    started = time.time()
    system.set_faults(stall_after_messages=0, stall_seconds=3600, http_5xx_next=REST_OUTAGE)
    try:
        tick = wait_for(
            system,
            lambda: next((t for t in sensor_ticks(instance, started) if judged_stale(t)), None),
            DETECT_TIMEOUT_S,
            poll_s=2.0,
        )
        launched = tick is not None and bool(tick.run_ids)
        record = None
        if launched:
            record = wait_for(
                system, lambda: succeeded(repair_runs(instance, started)), REPAIR_RUN_TIMEOUT_S
            )
    finally:
        system.clear_faults()
    label = "2a. market stall (WS stalled + REST failing) → sensor judges stale"
    if tick is None:
        return [Row(label, None, FLOOR, f"no stale tick within {DETECT_TIMEOUT_S} s")], False
    rows = [Row(label, tick.timestamp - started, FLOOR, _short(tick.skip_reason or "repair"))]
    if launched:
        end = None if record is None else record.end_time
        rows.append(Row("    market stall → staleness_repair succeeded", span(started, end)))
    return rows, launched


@contextlib.contextmanager
def write_lock(path: str) -> Iterator[None]:
    """Hold sqlite's RESERVED lock: other connections still read, none can write."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        connection.close()


def online_write_outage(system: RunningSystem, instance: Any) -> list[Row]:
    store = system.dagster_home / "data" / "feast" / "data" / "online_store.db"
    label = "2b. online store write outage → staleness_repair succeeded"
    started = time.time()
    with write_lock(str(store)):
        requested = wait_for(
            system, lambda: repair_runs(instance, started) or None, DETECT_TIMEOUT_S, poll_s=2.0
        )
        released = time.time()
    if requested is None:
        reasons = [t.skip_reason or "" for t in sensor_ticks(instance, started)]
        note = f"no repair within {DETECT_TIMEOUT_S} s: {_short(reasons[-1] if reasons else '')}"
        return [Row(label, None, FLOOR, note)]
    record = wait_for(
        system, lambda: succeeded(repair_runs(instance, started)), REPAIR_RUN_TIMEOUT_S
    )
    request_s = min(r.create_timestamp.timestamp() for r in requested)
    partition = requested[0].dagster_run.tags.get("dagster/partition", "")
    end = None if record is None else record.end_time
    return [
        Row(label, span(started, end), FLOOR, f"lock released {released - started:.0f} s in"),
        Row("    outage → repair run requested", span(started, request_s)),
        Row(
            "    repair run, requested → succeeded",
            span(request_s, end),
            note=f"silver → bars_1s → features → online_features, {partition}",
        ),
    ]


def stall_to_repair(system: RunningSystem) -> list[Row]:
    """Both faults' rows (the second only when the first launched no repair)."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(system.dagster_home))
    rows, launched = market_stall(system, instance)
    if not launched:
        time.sleep(RECOVERY_S)
        rows += online_write_outage(system, instance)
    return rows
