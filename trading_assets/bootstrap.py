"""First start of a fresh instance: a first gated model within about two minutes, then the rest
of the history.

``python -m trading_assets.bootstrap --days 3 --wait-for http://127.0.0.1:3000`` (``make run``
starts it next to ``dagster dev``; it waits until the webserver answers, which means the
instance's storage exists):

1. the newest full day × every instrument whose venue publishes daily bulk files (Binance spot),
   ingested in this process (``lakehouse_daily``, one run per partition, recorded on the
   instance: the Runs page shows them). A backfill through the daemon would cost a ``dagster job
   backfill`` process and a run process per partition, each loading the code location, for a day
   whose work takes seconds;
2. the first model chain on that day and today's live gold: the Feast registry, the online store,
   the training set, the full model, the newest rows, the incremental model, its ONNX export and
   parity check, the MLflow version and its gate;
3. the older ``days − 1`` days as a ``lakehouse_daily`` backfill that the daemon runs (the UI's
   *Backfills* page shows it), then the chain again on every day, whose version has to earn
   @champion through @shadow and @canary like any later challenger.

Instruments of other venues have no past days to fetch: their days are built from the trades the
sidecar lands (the live pickup), so the history leaves them out and says so, and each training
set pools whatever days every instrument has by then (the features are scale-free).

The rollout sensor takes the first @challenger to @champion (there is no champion to beat yet)
and the sidecar starts serving it. A model that fails the evaluation gate gets no alias on any
later path either, so nothing serves and the sidecar stays in safe mode, saying so, until a later
version passes. When a full model exists, only the days of the window whose history is missing
are backfilled (a start cut short after the first model resumes there), so a second ``make run``
starts at once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Sequence

import dagster as dg
import httpx
from dagster._core.storage.dagster_run import RunsFilter

from trading_assets.defs.features.assets import (
    feast_registry,
    features,
    online_features,
    training_set,
)
from trading_assets.defs.ingest.partitions import (
    DATE_DIMENSION,
    INSTRUMENT_DIMENSION,
    trade_partitions,
)
from trading_assets.defs.models import registry, training
from trading_assets.lib.lakehouse.bulk import bulk_symbol
from trading_assets.resources import build_resources

BACKFILL_JOB = "lakehouse_daily"
BACKFILL_TAG = "dagster/backfill"
# The daemon that takes the backfill's queued runs; its heartbeat says the daemon is up.
RUN_DAEMON = "QUEUED_RUN_COORDINATOR"
HEARTBEAT_FRESH_S = 60.0
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
MODEL_CHAIN = [
    feast_registry,
    online_features,
    training_set,
    training.full_model,
    training.recent_training_rows,
    training.incremental_model,
    registry.onnx_model,
    registry.onnx_parity,
    registry.registered_model,
    registry.beats_baselines,
    registry.challenger_model,
]


def training_days(days: int) -> int:
    """``training_set``'s ``last_days`` covering the ``days`` backfilled full days.

    Its window counts back from the newest exported day, and while the sidecar runs that is
    today: every live pickup exports today's gold. Counting today as well keeps every backfilled
    day in the first model's training set instead of losing the oldest one (with one day of
    history, the first model would train on today's few minutes alone).
    """
    return days + 1


def say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def history_days(days: int, today: dt.date | None = None) -> list[dt.date]:
    """The last ``days`` full UTC days before today, oldest first."""
    today = today or dt.datetime.now(dt.UTC).date()
    return [today - dt.timedelta(days=n) for n in range(days, 0, -1)]


def webserver_up(url: str) -> bool:
    """Whether the Dagster webserver at ``url`` answers (it does once the code has loaded)."""
    try:
        return httpx.get(f"{url.rstrip('/')}/server_info", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def daemon_beating(instance: dg.DagsterInstance, now_s: float) -> bool:
    """Whether the run queue's daemon has sent a heartbeat recently."""
    beat = instance.get_daemon_heartbeats().get(RUN_DAEMON)
    return beat is not None and now_s - beat.timestamp < HEARTBEAT_FRESH_S


def wait_until_ready(url: str, timeout_s: float) -> dg.DagsterInstance:
    """Wait for ``dagster dev``'s webserver to answer, then open the instance.

    The instance is opened only once the webserver answers, so this process never races
    ``dagster dev`` at creating a fresh instance's storage."""
    deadline = time.monotonic() + timeout_s
    say(f"waiting for the Dagster webserver at {url}")
    while not webserver_up(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Dagster webserver answered at {url} within {timeout_s:.0f} s")
        time.sleep(1)
    return dg.DagsterInstance.get()


def wait_for_daemon(instance: dg.DagsterInstance, timeout_s: float) -> None:
    """Wait until the run queue's daemon beats (it executes a backfill's runs)."""
    deadline = time.monotonic() + timeout_s
    while not daemon_beating(instance, time.time()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Dagster daemon did not start within {timeout_s:.0f} s")
        time.sleep(1)


def split_instruments(instruments: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the instruments whose venue publishes daily bulk files: their history is fetched; the
    others: their days come only from the trades the sidecar lands), each in the given order."""
    with_files = [i for i in instruments if bulk_symbol(i) is not None]
    return with_files, [i for i in instruments if bulk_symbol(i) is None]


def history_instruments(configured: Sequence[str]) -> list[str]:
    """The instruments of ``configured`` whose history the bootstrap fetches, after saying which
    ones it leaves to the live feed (and, when none has daily files, that there is no history)."""
    with_files, live_only = split_instruments(configured)
    for instrument in live_only:
        say(f"{instrument}: no daily files; its days come from the trades the sidecar lands")
    if not with_files:
        say(
            "no instrument has daily files: no history to fetch; the first model comes from "
            "the scheduled training (full_model, every 6 h) on the trades the sidecar lands"
        )
    return with_files


def split_history(days: list[dt.date]) -> tuple[list[dt.date], list[dt.date]]:
    """The newest day (ingested at once, for the first model) and the older ones (backfilled
    by the daemon afterwards)."""
    return days[-1:], days[:-1]


def ingest_in_process(instance: dg.DagsterInstance, days: list[dt.date], symbols: list[str]) -> int:
    """``lakehouse_daily`` for every day × symbol in this process, one run each, recorded on
    ``instance``; how many succeeded."""
    from trading_assets.definitions import defs

    job = defs().resolve_job_def(BACKFILL_JOB)
    succeeded = 0
    for day in days:
        for symbol in symbols:
            key = partition_key(day, symbol)
            started = time.monotonic()
            result = job.execute_in_process(
                partition_key=str(key), instance=instance, raise_on_error=False
            )
            outcome = "done" if result.success else f"failed (run {result.run_id})"
            say(f"{key}: {outcome} in {time.monotonic() - started:.1f} s")
            succeeded += result.success
    return succeeded


def backfill_command(days: list[dt.date], instruments: list[str]) -> list[str]:
    """``dagster job backfill`` of exactly days × ``instruments``, as a list of partitions.

    Not ``--from``/``--to``: that selects a slice of the job's partition keys, ordered day by day
    and, within a day, by every configured instrument, so any range over two days takes in the
    instruments between (those without bulk files too)."""
    keys = [str(partition_key(day, instrument)) for day in days for instrument in instruments]
    return [
        sys.executable, "-m", "dagster", "job", "backfill", "-w", "workspace.yaml",
        "-j", BACKFILL_JOB, "--partitions", ",".join(keys), "--noprompt",
    ]  # fmt: skip


def launch_backfill(days: list[dt.date], instruments: list[str]) -> str:
    """``dagster job backfill`` over days × instruments (the daemon executes the runs); its id."""
    command = backfill_command(days, instruments)
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    launched = re.search(r"Launched backfill job `([^`]+)`", completed.stdout)
    if launched is None:
        raise RuntimeError(f"dagster job backfill named no backfill: {completed.stdout[-500:]}")
    return launched.group(1)


def wait_for_backfill(
    instance: dg.DagsterInstance, backfill_id: str, expected: int, timeout_s: float
) -> int:
    """Wait until ``expected`` runs of backfill ``backfill_id`` finished; returns how many
    succeeded. Runs of earlier backfills on the same instance do not count."""
    deadline = time.monotonic() + timeout_s
    reported = -1
    runs_filter = RunsFilter(job_name=BACKFILL_JOB, tags={BACKFILL_TAG: backfill_id})
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=runs_filter)
        done = [run for run in runs if run.status in DONE]
        if len(done) != reported:
            say(f"history backfill: {len(done)} of {expected} partitions done")
            reported = len(done)
        if len(done) >= expected:
            return sum(run.status == dg.DagsterRunStatus.SUCCESS for run in done)
        time.sleep(2)
    raise TimeoutError(f"the history backfill did not finish within {timeout_s:.0f} s")


def chain_outcome(result: dg.ExecuteInProcessResult) -> str:
    """What the model chain's run left for the rollout, in words."""
    gate_name = registry.beats_baselines.check_key.name
    gates = [e for e in result.get_asset_check_evaluations() if e.check_name == gate_name]
    version = gates[0].metadata.get("version") if gates else None
    model = "model" if version is None else f"model version {version.value}"
    if result.success:
        return f"{model} passed the evaluation gate: @challenger, which the rollout makes @champion"
    if gates and not gates[0].passed:
        return (
            f"{model} recorded, but it failed the evaluation gate ({gate_name}): no @challenger, "
            "so no model serves and the sidecar stays in safe mode until a later version passes "
            "(see the check in the UI)"
        )
    return "the model chain failed; see the run in the UI"


def has_full_model(instance: dg.DagsterInstance) -> bool:
    return instance.get_latest_materialization_event(training.full_model.key) is not None


def missing_days(
    instance: dg.DagsterInstance, days: list[dt.date], symbols: list[str]
) -> list[dt.date]:
    """The days of ``days`` whose gold features some symbol lacks (its history is not in)."""
    done = instance.get_materialized_partitions(features.key)
    return [
        day
        for day in days
        if any(str(partition_key(day, symbol)) not in done for symbol in symbols)
    ]


def partition_key(day: dt.date, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE_DIMENSION: day.isoformat(), INSTRUMENT_DIMENSION: symbol})


def bootstrap(days: int, timeout_s: float, wait_for: str | None = None) -> None:
    if wait_for is None:
        instance = dg.DagsterInstance.get()
    else:
        instance = wait_until_ready(wait_for, timeout_s)
    configured = trade_partitions.get_partitions_def_for_dimension(INSTRUMENT_DIMENSION)
    symbols = history_instruments(configured.get_partition_keys())
    if not symbols:
        return
    window = history_days(days)
    if has_full_model(instance):
        # A start cut short after the first model (Ctrl-C, a timeout) resumes with the history.
        backfill_and_retrain(instance, missing_days(instance, window, symbols), symbols, days,
                             timeout_s)  # fmt: skip
        return
    newest, older = split_history(window)
    say(f"ingesting {newest[0]} × {', '.join(symbols)} for the first model")
    if ingest_in_process(instance, newest, symbols) == 0:
        raise RuntimeError("no partition of the newest day succeeded; see the runs in the UI")
    train(instance, len(newest), "the first model")
    backfill_and_retrain(instance, older, symbols, days, timeout_s)


def backfill_and_retrain(
    instance: dg.DagsterInstance,
    missing: list[dt.date],
    symbols: list[str],
    days: int,
    timeout_s: float,
) -> None:
    """Backfill the ``missing`` days through the daemon, then train on every day of the window
    (a challenger to the serving model). Nothing when no day is missing."""
    if not missing:
        say(f"the last {days} full day(s) of history are in: nothing to backfill")
        return
    say(f"backfilling {missing[0]} .. {missing[-1]} × {', '.join(symbols)} (watch it in the UI)")
    wait_for_daemon(instance, timeout_s)
    backfill_id = launch_backfill(missing, symbols)
    succeeded = wait_for_backfill(instance, backfill_id, len(missing) * len(symbols), timeout_s)
    if succeeded == 0:
        raise RuntimeError("no history partition of the backfill succeeded; see the runs in the UI")
    train(instance, days, "a model on every backfilled day (a challenger to the first)")


def train(instance: dg.DagsterInstance, days: int, what: str) -> None:
    """The model chain on the newest ``days`` full days and today's live gold."""
    say(f"training {what}: training set → full → incremental → ONNX → MLflow")
    started = time.monotonic()
    result = dg.materialize(
        MODEL_CHAIN,
        instance=instance,
        resources=build_resources(),
        run_config={"ops": {"training_set": {"config": {"last_days": training_days(days)}}}},
        raise_on_error=False,
    )
    say(f"{chain_outcome(result)} ({time.monotonic() - started:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Backfill recent history and train a first model.")
    parser.add_argument("--days", type=int, default=3, help="full days of history to backfill")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait")
    parser.add_argument(
        "--wait-for",
        metavar="URL",
        help="first wait until the Dagster webserver at URL answers and its daemon beats",
    )
    args = parser.parse_args(argv)
    bootstrap(args.days, args.timeout, args.wait_for)
    return 0


if __name__ == "__main__":
    sys.exit(main())
