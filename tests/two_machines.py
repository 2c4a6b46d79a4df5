"""Two machines on one host for the production-profile chain: the Dagster side (a gRPC code server
and a daemon that launches each run as its own process) and the sidecar, each under a root of its
own, with only PostgreSQL, S3, Redis and the MLflow server between them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg2
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, PartitionBackfill
from dagster._core.storage.dagster_run import RunsFilter

from tests.conftest import REPO_ROOT
from trading_assets.servers import MlflowServer, PostgresServer, RedisServer, S3Server, free_port

LOCATION = "trading_assets"
PROD_INSTANCE_YAML = REPO_ROOT / "dagster_home" / "dagster.prod.yaml"
BACKFILL_TAG = "dagster/backfill"
RETRY_NUMBER_TAG = "dagster/retry_number"
LAUNCH_BACKFILL = (
    "mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params)"
    " { __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"
)


@dataclass(frozen=True)
class Stores:
    """The servers, and this test's own databases, bucket prefix and model name on them."""

    postgres: PostgresServer
    redis: RedisServer
    s3: S3Server
    mlflow: MlflowServer
    tag: str  # names this test's databases, S3 prefix and registered model
    bucket: str = "trading"

    def database(self, role: str) -> str:
        return f"{role}_{self.tag}"

    def create_databases(self) -> None:
        with contextlib.closing(psycopg2.connect(self.postgres.url(driver="postgresql"))) as pg:
            pg.autocommit = True
            with pg.cursor() as cursor:
                for role in ("dagster", "iceberg", "feast"):
                    cursor.execute(f'CREATE DATABASE "{self.database(role)}"')

    def environment(self, data_dir: Path) -> dict[str, str]:
        """``TRADING_ENV=prod`` with every store on the servers; ``data_dir``: this machine's."""
        s3 = f"s3://{self.bucket}/{self.tag}"
        return {
            "TRADING_ENV": "prod",
            "TRADING_DATA_DIR": str(data_dir),
            "TRADING_LANDING_URI": f"{s3}/landing",
            "TRADING_MODELS_URI": f"{s3}/models",
            "ICEBERG_CATALOG_URI": self.postgres.url(self.database("iceberg")),
            "ICEBERG_WAREHOUSE": f"{s3}/warehouse",
            "FEAST_REGISTRY_PATH": self.postgres.url(self.database("feast")),
            "FEAST_OFFLINE_ROOT": f"{s3}/feast",
            "REDIS_CONNECTION_STRING": self.redis.connection_string,
            "MLFLOW_TRACKING_URI": self.mlflow.tracking_url,
            "MLFLOW_MODEL_NAME": f"signal_{self.tag}",
            "DAGSTER_POSTGRES_URL": self.postgres.url(self.database("dagster")),
            "DAGSTER_COMPUTE_LOGS_BUCKET": self.bucket,
            "AWS_ENDPOINT_URL": self.s3.endpoint_url,
            "AWS_REGION": self.s3.region,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
        }

    def secrets(self) -> list[str]:
        """What must never be written anywhere but the servers' own configuration."""
        return [self.postgres.password, self.redis.password, self.s3.secret_key, self.s3.access_key]


@dataclass
class Machine:
    """A root folder that is this machine's whole disk, and the processes it runs."""

    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def run(self, argv: list[str], timeout_s: float = 300) -> str:
        done = subprocess.run(
            argv, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv[2:5]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout + done.stderr

    def log(self, name: str) -> str:
        return (self.root / "logs" / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def machine(root: Path, env: dict[str, str], extra: dict[str, str]) -> Machine:
    (root / "logs").mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if not _setting_like(k)}
    # Each machine has its own home: nothing it caches (DuckDB's extensions, MLflow, Feast) can
    # be read by the other.
    home = root / "home"
    home.mkdir()
    return Machine(root, base | env | extra | {"HOME": str(home)})


def _setting_like(name: str) -> bool:
    return name.startswith(("TRADING_", "AWS_", "MLFLOW_", "FEAST_", "ICEBERG_", "DAGSTER_")) or (
        name in ("REDIS_CONNECTION_STRING", "SIDECAR_URL", "BINANCE_BULK_BASE_URL")
    )


@contextlib.contextmanager
def dagster_machine(root: Path, env: dict[str, str]) -> Iterator[Machine]:
    """A code server over gRPC and a daemon on the production instance (PostgreSQL storage, S3
    compute logs); the daemon launches every run as a process of its own."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(PROD_INSTANCE_YAML.read_text())
    port = free_port()
    workspace = root / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n"
        f"      location_name: {LOCATION}\n"
    )
    side = machine(root, env, {"DAGSTER_HOME": str(home)})
    dagster = [sys.executable, "-m", "dagster"]
    try:
        side.start("code-server", [*dagster, "code-server", "start", "-m",
                                   "trading_assets.definitions", "-h", "127.0.0.1", "-p",
                                   str(port), "--location-name", LOCATION])  # fmt: skip
        _await(lambda: _grpc_up(side, port), 180, "the code server")
        side.start("daemon", [sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace)])
        yield side
    finally:
        side.stop_all()


def _grpc_up(side: Machine, port: int) -> bool:
    probe = [sys.executable, "-m", "dagster", "api", "grpc-health-check", "-p", str(port)]
    return subprocess.run(probe, env=side.env, capture_output=True).returncode == 0


def _await(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


def files_under(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        yield from (path for path in root.rglob("*") if path.is_file())


def database_text(postgres: PostgresServer, database: str) -> Iterator[tuple[str, str]]:
    """Every row of every table of ``database``, as text, with its table's name."""
    url = postgres.url(database, driver="postgresql")
    with contextlib.closing(psycopg2.connect(url)) as pg, pg.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'SELECT CAST(t AS text) FROM "{table}" t')
            for (row,) in cursor:
                yield table, row


def s3_text(s3: S3Server, bucket: str, prefixes: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """Every object under ``prefixes`` with its key."""
    client = s3.client()
    for prefix in prefixes:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()


def launch_asset_backfill(
    side: Machine, workspace: Path, assets: Iterable[str], partitions: Iterable[str]
) -> str:
    """An asset backfill of ``assets`` × ``partitions``, launched as the UI launches one
    (*Materialize → Backfill*); the daemon runs it. Its id.

    The daemon retries a run whose worker died as part of the backfill. A ``dagster job
    backfill`` is recorded complete as soon as it has submitted its runs, and Dagster retries no
    run of a complete backfill: a run that a store outage killed would stay failed."""
    answer_file = side.root / "backfill-answer.json"
    params = {
        "params": {
            "assetSelection": [{"path": [asset]} for asset in assets],
            "partitionNames": list(partitions),
        }
    }
    graphql = str(Path(sys.executable).parent / "dagster-graphql")
    side.run([graphql, "-w", str(workspace), "-t", LAUNCH_BACKFILL, "-v", json.dumps(params),
              "-o", str(answer_file)])  # fmt: skip
    answer = json.loads(answer_file.read_text())["data"]["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=RunsFilter(tags={BACKFILL_TAG: backfill_id})))


def await_backfill(
    instance: dg.DagsterInstance, backfill_id: str, timeout_s: float
) -> PartitionBackfill:
    """The backfill once the daemon has finished it (its runs and their retries done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        backfill = instance.get_backfill(backfill_id)
        if backfill is not None and backfill.status in BULK_ACTION_TERMINAL_STATUSES:
            return backfill
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} not finished within {timeout_s:.0f} s")


def await_partitions(
    instance: dg.DagsterInstance, backfill_id: str, partitions: Iterable[str], timeout_s: float
) -> list[dg.DagsterRun]:
    """The backfill's runs once each partition's newest run has finished for good (a failed
    run the daemon is about to retry has not); the backfill itself is marked done later, at
    the daemon's next pass."""
    wanted = set(partitions)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = backfill_runs(instance, backfill_id)
        newest = newest_per_partition(runs)
        if set(newest) == wanted and all(_for_good(run) for run in newest.values()):
            return runs
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id}: partitions not done within {timeout_s:.0f} s")


def _for_good(run: dg.DagsterRun) -> bool:
    if run.status == dg.DagsterRunStatus.FAILURE:
        return run.tags.get("dagster/will_retry") == "false"
    return run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED)


def await_step(
    instance: dg.DagsterInstance, runs: RunsFilter, step: str, since: float, timeout_s: float
) -> None:
    """Until a run matching ``runs`` starts ``step`` at ``since`` (a ``time.time()``) or later."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in instance.get_runs(filters=runs):
            starts = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_START
            ).records
            if any(r.event_log_entry.step_key == step and r.event_log_entry.timestamp >= since
                   for r in starts):  # fmt: skip
                return
        time.sleep(0.5)
    raise AssertionError(f"no run started {step} within {timeout_s:.0f} s")


@dataclass(frozen=True)
class StepEvent:
    """A step's retry or failure: the step, the error at its root, and when (``time.time()``)."""

    step: str
    cause: str
    at: float

    def __str__(self) -> str:
        return f"{self.step}: {self.cause}"


def step_retries(instance: dg.DagsterInstance, runs: Iterable[dg.DagsterRun]) -> list[StepEvent]:
    """Each step retry of ``runs``, with the error that asked for it."""
    return _step_events(instance, runs, dg.DagsterEventType.STEP_UP_FOR_RETRY)


def step_failures(instance: dg.DagsterInstance, runs: Iterable[dg.DagsterRun]) -> list[StepEvent]:
    """Each step failure of ``runs``, with the error at its root."""
    return _step_events(instance, runs, dg.DagsterEventType.STEP_FAILURE)


def _step_events(
    instance: dg.DagsterInstance, runs: Iterable[dg.DagsterRun], kind: dg.DagsterEventType
) -> list[StepEvent]:
    found = []
    for run in runs:
        for record in instance.get_records_for_run(run.run_id, of_type=kind).records:
            entry = record.event_log_entry
            error = getattr(
                getattr(entry.dagster_event, "event_specific_data", None), "error", None
            )
            while error is not None and (error.cause or error.context) is not None:
                error = error.cause or error.context
            cause = f"{error.cls_name}: {error.message.strip()[:160]}" if error else "?"
            found.append(StepEvent(entry.step_key or "", cause, entry.timestamp))
    return found


def run_retries(runs: Iterable[dg.DagsterRun]) -> list[dg.DagsterRun]:
    """The runs the daemon launched again after their parent run failed."""
    return [run for run in runs if RETRY_NUMBER_TAG in run.tags]


def newest_per_partition(runs: Iterable[dg.DagsterRun]) -> dict[str, dg.DagsterRun]:
    """Each partition's newest run (a retry supersedes the run it retries)."""
    newest: dict[str, dg.DagsterRun] = {}
    for run in sorted(runs, key=lambda r: int(r.tags.get(RETRY_NUMBER_TAG, "0"))):
        newest[run.tags.get("dagster/partition", "")] = run
    return newest
