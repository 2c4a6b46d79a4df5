"""The production profile next to the local one, in the same run: what network stores cost.

(1) One synthetic day of one symbol (the project's simulator market) is backfilled through the
lakehouse (raw → bronze → silver → bars_1s → bars_1m → features: gold + the Feast export), then
the model cycle runs on it (feast_registry, online_features, training_set, full_model,
recent_training_rows, incremental_model, onnx_model + its parity check, registered_model + its
evaluation gate): each step one in-process Dagster run, timed wall to wall
(:mod:`bench.profile_cycle`). Two rounds per profile, the profiles taking turns (local, prod,
prod, local), each round a fresh child process with that profile's settings, ``build_resources()``
and stores of its own; a step's row is its better round, the host being shared:

* local: the Iceberg catalog on sqlite with a warehouse folder, Feast's file registry, sqlite
  online store and folder exports, MLflow on sqlite with local artifacts, Dagster's sqlite
  instance;
* prod: the Iceberg catalog on PostgreSQL with an ``s3://`` warehouse, Feast's SQL registry on
  PostgreSQL, Redis with a password and exports on S3, the MLflow server (on PostgreSQL,
  artifacts proxied to S3), Dagster's PostgreSQL instance; every server the project's own
  (:mod:`trading_assets.servers`) on this host's loopback, PostgreSQL durable (fsync on) as the
  supervised service runs it; a remote deployment adds its network's round trips on top.

One-off costs (imports, creating the Iceberg tables, the MLflow store's schema, a first Dagster
run) are paid before the clock starts on both sides. The gate's verdict is printed as given.

(2) Online reads from the prod Redis (with a password), the store opened from the prod settings
as the sidecar opens it (SQL registry): the sidecar's ``OnlineFeatureReader`` against Feast's
``get_online_features`` on the same rows, for ``signal_v1`` (the full vector) and the training
service, p50 / p99 over rounds in which the paths take turns, so a busy stretch of the shared
host weighs on all of them; the floor is one Redis round trip (``PING``). Target: p99 ≤ 1 ms for
``signal_v1``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT

SYMBOL = "BTCUSDT"  # as the simulator and the bulk files name it
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the partitions' and the feature store's
TRADES_PER_DAY = 500_000
ROUNDS = 10
READS_PER_ROUND = 300
WARMUP_READS = 200
TARGET_P99_MS = 1.0
TARGET_SERVICE = "signal_v1"
ORDER = ("local", "prod", "prod", "local")  # taking turns, so drift in the host's load is shared
BUCKET = "trading"
SETTING_PREFIXES = ("TRADING_", "AWS_", "MLFLOW_", "FEAST_", "ICEBERG_", "DAGSTER_")
PROD_INSTANCE_YAML = REPO_ROOT / "dagster_home" / "dagster.prod.yaml"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def base_environment() -> dict[str, str]:
    """This process's environment without any setting, so a child reads only its profile's."""
    from trading_assets.lib.settings import BY_NAME

    return {
        name: value
        for name, value in os.environ.items()
        if name not in BY_NAME and not name.startswith(SETTING_PREFIXES)
    }


def write_mirror(root: Path) -> tuple[dt.date, int, float]:
    """The simulator's day closest to ``TRADES_PER_DAY`` trades, laid out as Binance's bulk
    files under ``root`` (served as ``file://``, the same to both profiles)."""
    from bench.bench_pipeline import pick_day
    from streaming.simulator.synthetic import SyntheticMarket
    from trading_assets.lib.lakehouse.bulk import publish_to_mirror

    market = SyntheticMarket(trades_per_day=TRADES_PER_DAY)
    day = pick_day(market, SYMBOL, TRADES_PER_DAY)
    target = publish_to_mirror(root, SYMBOL, day, market.day_trades_csv_zip(SYMBOL, day))
    return day, market.trade_count(SYMBOL, day), target.stat().st_size / 1e6


def shared_variables(root: Path, day: dt.date, mirror: Path) -> dict[str, str]:
    """What both profiles are given alike: the symbol, the day, the bulk files, a data folder."""
    data = root / "data"
    data.mkdir(parents=True)
    return {
        "TRADING_DATA_DIR": str(data),
        "TRADING_INSTRUMENTS": INSTRUMENT,
        "TRADING_HISTORY_START": day.isoformat(),
        "BINANCE_BULK_BASE_URL": mirror.as_uri(),
    }


def local_environment(root: Path, day: dt.date, mirror: Path) -> dict[str, str]:
    """``TRADING_ENV=local``: every store embedded under the data folder."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    return base_environment() | shared_variables(root, day, mirror) | {
        "TRADING_ENV": "local",
        "DAGSTER_HOME": str(home),
    }  # fmt: skip


def prod_environment(root: Path, day: dt.date, mirror: Path, stores: Any) -> dict[str, str]:
    """``TRADING_ENV=prod`` on the servers (:meth:`tests.two_machines.Stores.environment`), with
    the production Dagster instance (PostgreSQL storage)."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(PROD_INSTANCE_YAML.read_text())
    shared = shared_variables(root, day, mirror)
    return (
        base_environment()
        | stores.environment(Path(shared["TRADING_DATA_DIR"]))
        | shared
        | {"DAGSTER_HOME": str(home)}
    )


def run_json(module: str, *args: str, env: dict[str, str]) -> dict[str, Any]:
    """``python -m module args`` in ``env``; the JSON object on its last stdout line. A failure
    shows the end of the child's stderr."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{module} {args} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def prod_servers() -> Iterator[tuple[Any, ...]]:
    """PostgreSQL (durable, as the supervised service runs it), Redis with a password, S3 and the
    MLflow server, started by the project (:mod:`trading_assets.servers`)."""
    from trading_assets.servers import mlflow_server, postgres_server, redis_server, s3_server

    with (
        postgres_server(durable=True) as postgres,
        redis_server(password=secrets.token_hex(16)) as redis,
        s3_server([BUCKET]) as s3,
        mlflow_server(postgres, s3, BUCKET) as mlflow,
    ):
        yield postgres, redis, s3, mlflow


def fresh_stores(servers: tuple[Any, ...]) -> Any:
    """A round's own databases, S3 prefix and model name on the servers (``Stores``), and an
    empty Redis, so no round finds another's rows (Redis skips a write no newer than it holds)."""
    from redis import Redis

    from tests.two_machines import Stores

    postgres, redis, s3, mlflow = servers
    Redis(host=redis.host, port=redis.port, password=redis.password).flushall()
    stores = Stores(postgres, redis, s3, mlflow, tag=secrets.token_hex(4), bucket=BUCKET)
    stores.create_databases()
    return stores


# --- (2) online reads, in a child process of their own --------------------------------------------


def redis_client() -> Any:
    """A plain redis-py client of the settings' Redis (``host:port[,password=…]``)."""
    from redis import Redis

    from trading_assets.lib.settings import load_settings

    address, *options = (load_settings().redis_connection_string or "").split(",")
    host, port = address.rsplit(":", 1)
    password = dict(option.split("=", 1) for option in options).get("password")
    return Redis(host=host, port=int(port), password=password)


def interleaved(calls: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Durations (s) of each call over ``ROUNDS`` rounds, the calls taking turns by round."""
    for call in calls.values():
        for _ in range(WARMUP_READS):
            call()
    samples: dict[str, list[float]] = {label: [] for label in calls}
    clock = time.perf_counter
    for _ in range(ROUNDS):
        for label, call in calls.items():
            durations = samples[label]
            for _ in range(READS_PER_ROUND):
                started = clock()
                call()
                durations.append(clock() - started)
    return samples


def child_reads(data_dir: str) -> dict[str, Any]:
    """The sidecar's store from the prod settings; every view of ``signal_v1`` pushed one row
    newer than what online_features materialized; then the read paths, per service."""
    from bench.bench_online import feature_rows, percentiles
    from streaming.config import parse_args
    from streaming.online import OnlineFeatureReader, open_feature_store
    from trading_assets.lib.feature_store import spec

    store = open_feature_store(parse_args(["--data-dir", data_dir]))
    now = dt.datetime.now(dt.UTC)
    for group in spec.SERVICES[TARGET_SERVICE]:
        store.push(
            f"{group}_push_source", feature_rows(spec.group_features(group), [INSTRUMENT], now)
        )
    rows = [{spec.ENTITY: INSTRUMENT}]
    results: dict[str, Any] = {}
    for service in (TARGET_SERVICE, spec.TRAINING_SERVICE):
        reader = OnlineFeatureReader(store, service)
        feature_service = store.get_feature_service(service)
        refs = [f"{p.name}:{f.name}" for p in feature_service.feature_view_projections
                for f in p.features]  # fmt: skip
        read = reader.read(INSTRUMENT)
        sdk = store.get_online_features(features=feature_service, entity_rows=rows).to_dict()
        assert read is not None and all(v is not None for v in read.values.values())
        assert all(read.values[name] == sdk[name][0] for name in reader.names), service
        calls = {
            "reader": lambda reader=reader: reader.read(INSTRUMENT),
            "sdk_service": lambda fs=feature_service: store.get_online_features(
                features=fs, entity_rows=rows),
            "sdk_refs": lambda refs=refs: store.get_online_features(
                features=refs, entity_rows=rows),
        }  # fmt: skip
        if service == TARGET_SERVICE:
            calls["ping"] = redis_client().ping
        samples = interleaved(calls)
        results[service] = {
            "features": len(reader.names),
            "views": len(feature_service.feature_view_projections),
            **{label: percentiles(durations) for label, durations in samples.items()},
        }
    return results


# --- the tables -----------------------------------------------------------------------------------


def cycle_table(local: list[dict[str, Any]], prod: list[dict[str, Any]]) -> None:
    """Each step's best time per profile, totals, and what the rounds produced."""
    from bench.profile_cycle import LAKEHOUSE_STEPS, STEP_LABELS

    def best(runs: list[dict[str, Any]], names: Sequence[str]) -> float:
        return sum(min(run["seconds"][name] for run in runs) for name in names)

    def cell(runs: list[dict[str, Any]], name: str) -> str:
        failed = any(name in run["failed"] for run in runs)
        return f"{best(runs, [name]):.2f}" + (" (failed)" if failed else "")

    def row(label: str, left: str, right: str, ratio: str = "") -> None:
        print(f"{label:<36}{left:>16}{right:>16}{ratio:>12}")

    row("step", "local (s)", "prod (s)", "prod/local")
    model_steps = [name for name in STEP_LABELS if name not in LAKEHOUSE_STEPS]
    for part, names in (("lakehouse", LAKEHOUSE_STEPS), ("model cycle", model_steps)):
        for name in names:
            ratio = best(prod, [name]) / best(local, [name])
            row(STEP_LABELS[name], cell(local, name), cell(prod, name), f"{ratio:.1f}×")
        a, b = best(local, names), best(prod, names)
        row(f"  {part}", f"{a:.2f}", f"{b:.2f}", f"{b / a:.1f}×")
    a, b = best(local, list(STEP_LABELS)), best(prod, list(STEP_LABELS))
    row("total (sum of the best steps)", f"{a:.2f}", f"{b:.2f}", f"{b / a:.1f}×")

    def per_round(runs: list[dict[str, Any]], show) -> str:
        return ", ".join(show(run) for run in runs)

    def verdict(key: str):
        def show(run: dict[str, Any]) -> str:
            value = run["facts"].get(key)
            return "—" if value is None else ("passed" if value else "failed")

        return show

    row("total of each round", per_round(local, lambda r: f"{sum(r['seconds'].values()):.1f}"),
        per_round(prod, lambda r: f"{sum(r['seconds'].values()):.1f}"))  # fmt: skip
    row(
        "onnx parity check", per_round(local, verdict("parity")), per_round(prod, verdict("parity"))
    )
    row("evaluation gate", per_round(local, verdict("gate")), per_round(prod, verdict("gate")))
    for key, label in (("silver_rows", "silver rows"), ("bars_1s_rows", "bars_1s rows"),
                       ("training_rows", "training_set rows"), ("recent_rows", "recent rows"),
                       ("version", "registered version")):  # fmt: skip
        row(label, str(local[0]["facts"].get(key)), str(prod[0]["facts"].get(key)))
    reasons = {run["facts"].get("gate_reason") for run in [*local, *prod]} - {None}
    for reason in sorted(reasons):
        print(f"gate: {reason}")


def reads_table(reads: dict[str, Any]) -> None:
    labels = {
        "reader": "sidecar OnlineFeatureReader.read",
        "sdk_service": "get_online_features(<FeatureService>)",
        "sdk_refs": "get_online_features([refs])",
        "ping": "floor: PING, one round trip (redis-py)",
    }
    print(f"{'service':<40}{'path':<40}{'p50':>8}{'p99':>8}")
    for service, result in reads.items():
        name = f"{service}: {result['features']} features, {result['views']} views"
        for key, label in labels.items():
            if key not in result:
                continue
            p50, p99 = result[key]
            note = ""
            if service == TARGET_SERVICE and key == "reader":
                met = "meets" if p99 <= TARGET_P99_MS else "misses"
                note = f"   target p99 ≤ {TARGET_P99_MS:g} ms: {met}"
            print(f"{name:<40}{label:<40}{p50:>8.3f}{p99:>8.3f}{note}")
            name = ""


def main() -> None:
    """Start the prod servers, run the profiles' rounds and the reads, print the two tables."""
    loads = [f"start {load_average()}"]
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "prod": []}
    root = Path(tempfile.mkdtemp(prefix="bench-prod-profile-"))
    try:
        mirror = root / "mirror"
        day, trades, zip_mb = write_mirror(mirror)
        with prod_servers() as servers:
            prod_env: dict[str, str] = {}
            for index, profile in enumerate(ORDER):
                folder = root / f"{index}-{profile}"
                if profile == "local":
                    env = local_environment(folder, day, mirror)
                else:
                    env = prod_env = prod_environment(folder, day, mirror, fresh_stores(servers))
                cycle = run_json("bench.profile_cycle", day.isoformat(), INSTRUMENT, env=env)
                runs[profile].append(cycle)
                loads.append(f"after {profile} {load_average()}")
            reads = run_json(
                "bench.bench_prod_profile", "reads", str(root / "reader"), env=prod_env
            )
            loads.append(f"after the reads {load_average()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"(1) {SYMBOL} {day}: {trades:,} trades (zip {zip_mb:.1f} MB); one Dagster run per "
          f"step, wall time, best of {len(ORDER) // 2} rounds per profile (order: "
          f"{', '.join(ORDER)})")  # fmt: skip
    cycle_table(runs["local"], runs["prod"])
    print(f"\n(2) online read of one {SYMBOL} vector from the prod Redis (password; SQL registry), "
          f"{ROUNDS} rounds × {READS_PER_ROUND} reads per path, ms")  # fmt: skip
    reads_table(reads)
    print("\nload average (1 / 5 / 15 min): " + "; ".join(loads))


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    print(json.dumps({"reads": child_reads}[kind](*rest)))
