"""What ``make run`` starts, from the Makefile's variables to each service's command line and
environment: the launcher's arguments are read from ``make -n run`` (which runs nothing)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT
from trading_assets.launcher import check_settings, parse_args, plan
from trading_assets.lib.settings import Settings
from trading_assets.servers import MLFLOW_ENV
from trading_assets.supervisor import Service

MARKET_URLS = ("BINANCE_BULK_BASE_URL", "BINANCE_REST_BASE_URL", "BINANCE_WS_BASE_URL")
PORTS = {"SIM_PORT": "9123", "DAGSTER_PORT": "3123", "SIDECAR_PORT": "8123", "MLFLOW_PORT": "5123"}


def services_of_make_run(data_dir: Path, **variables: str) -> dict[str, Service]:
    """The services the launcher would start for ``make run VAR=value ...``, by name."""
    args = args_of_make_run(data_dir, **variables)
    return {service.name: service for service in plan(args, python="python")}


def args_of_make_run(data_dir: Path, **variables: str) -> argparse.Namespace:
    """The launcher's arguments for ``make run VAR=value ...``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "MAKE"))}
    env["TRADING_DATA_DIR"] = str(data_dir)
    assignments = [f"{name}={value}" for name, value in (PORTS | variables).items()]
    dry_run = subprocess.run(
        ["make", "-n", "-o", ".venv/.synced", "run", *assignments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("\\\n", " ")
    line = next(line for line in dry_run.splitlines() if "trading_assets.launcher" in line)
    words = shlex.split(line)
    return parse_args(words[words.index("trading_assets.launcher") + 1 :])


def test_the_default_run_starts_the_simulator_first_and_points_the_market_clients_at_it(tmp_path):
    services = services_of_make_run(tmp_path)

    assert list(services) == ["simulator", "dagster", "sidecar", "mlflow", "bootstrap"]
    simulator = services["simulator"]
    assert simulator.argv[1:3] == ["-m", "streaming.simulator"]
    assert simulator.listens_on == ("127.0.0.1", 9123) and "--port" in simulator.argv
    for name in ("dagster", "sidecar", "bootstrap"):
        env = services[name].env
        assert env["BINANCE_WS_BASE_URL"] == "ws://127.0.0.1:9123", name
        assert (
            env["BINANCE_REST_BASE_URL"]
            == env["BINANCE_BULK_BASE_URL"]
            == ("http://127.0.0.1:9123")
        )
    for name in ("simulator", "mlflow"):
        assert not set(MARKET_URLS) & set(services[name].env), name
    assert services["dagster"].env["SIDECAR_URL"] == "http://127.0.0.1:8123"
    assert services["dagster"].argv[-4:] == ["-h", "127.0.0.1", "-p", "3123"]
    assert services["sidecar"].argv[-2:] == ["--port", "8123"]
    bootstrap = services["bootstrap"]
    assert bootstrap.one_shot
    assert bootstrap.argv[bootstrap.argv.index("--days") + 1] == "3"
    assert bootstrap.argv[-2:] == ["--wait-for", "http://127.0.0.1:3123"]


def test_mlflow_runs_one_worker_without_job_consumers_on_the_data_dirs_store(tmp_path):
    mlflow = services_of_make_run(tmp_path)["mlflow"]

    argv = mlflow.argv
    assert argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--port") + 1] == "5123"
    store = tmp_path.resolve() / "mlflow" / "mlflow.db"
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{store}"
    assert mlflow.env == MLFLOW_ENV == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    assert mlflow.log == store.parent / "server.log"


def test_binance_without_history_starts_no_simulator_and_no_bootstrap(tmp_path):
    services = services_of_make_run(tmp_path, MARKET="binance", HISTORY_DAYS="0")

    assert list(services) == ["dagster", "sidecar", "mlflow"]
    for service in services.values():
        assert not set(MARKET_URLS) & set(service.env), service.name


def test_a_replay_reaches_the_simulator_and_history_days_the_bootstrap(tmp_path):
    services = services_of_make_run(tmp_path, REPLAY="rec/session.txt.gz", HISTORY_DAYS="1")

    assert services["simulator"].argv[-2:] == ["--replay", "rec/session.txt.gz"]
    bootstrap = services["bootstrap"].argv
    assert bootstrap[bootstrap.index("--days") + 1] == "1"


def test_run_prod_starts_the_four_servers_first_then_each_side_on_its_own_data_folder(tmp_path):
    services = services_of_make_run(tmp_path, PROFILE="prod", PROD_DATA_DIR=str(tmp_path))

    assert list(services) == [
        "postgres", "redis", "s3", "mlflow", "simulator", "dagster", "sidecar", "bootstrap",
    ]  # fmt: skip
    dagster, sidecar = services["dagster"].env, services["sidecar"].env
    assert dagster["TRADING_DATA_DIR"] != sidecar["TRADING_DATA_DIR"]
    for env in (dagster, sidecar, services["bootstrap"].env):
        settings = Settings.from_environ(env)
        assert settings.environment == "prod"
        assert settings.landing_uri.startswith("s3://") and settings.models_uri.startswith("s3://")
        assert settings.mlflow_tracking_uri == "http://127.0.0.1:5123"
    home = Path(dagster["DAGSTER_HOME"])
    assert (home / "dagster.yaml").read_text() == (
        REPO_ROOT / "dagster_home" / "dagster.prod.yaml"
    ).read_text()
    assert "DAGSTER_HOME" not in sidecar


def test_run_prod_keeps_its_secrets_private_stable_and_off_every_command_line(tmp_path):
    first = services_of_make_run(tmp_path, PROFILE="prod", PROD_DATA_DIR=str(tmp_path))
    again = services_of_make_run(tmp_path, PROFILE="prod", PROD_DATA_DIR=str(tmp_path))

    secrets = Settings.from_environ(first["dagster"].env).secrets()
    assert secrets and secrets == Settings.from_environ(again["dagster"].env).secrets()
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    secret_key = first["dagster"].env["AWS_SECRET_ACCESS_KEY"]
    for service in first.values():
        command_line = " ".join(service.argv)
        assert secret_key not in command_line, service.name
        assert not any(secret in command_line for secret in secrets), service.name


def test_a_bad_setting_stops_the_launch_in_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADING_INSTRUMENTS", "BTCUSDT")

    problem = check_settings(parse_args(["--data-dir", str(tmp_path)]))

    assert problem is not None and problem.startswith("TRADING_INSTRUMENTS: ")
    monkeypatch.delenv("TRADING_INSTRUMENTS")
    assert check_settings(parse_args(["--profile", "prod", "--data-dir", str(tmp_path)])) is None
