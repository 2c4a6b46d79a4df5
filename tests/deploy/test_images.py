"""The Dockerfiles: their shape, and their install steps and commands replayed in clean
environments (tests/deploy/images.py), so an image that cannot install or start fails here."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.deploy.images import (
    DOCKERFILES,
    ImageEnv,
    command,
    installed_distributions,
    python_runs,
    read_stages,
    uv_syncs,
)
from tests.integration.live_sidecar import register_decisive_model
from trading_assets.servers.services import MLFLOW_ENV

pytestmark = pytest.mark.timeout(600)
SOURCES = ("trading_assets", "streaming", "sensors", "feature_repo")
# What the sidecar must run without: the orchestration group's heavy parts.
NOT_IN_SIDECAR = ("dagster", "dagster-webserver", "mlflow", "duckdb", "xgboost-cpu", "scipy",
                  "matplotlib", "onnxmltools", "boto3")  # fmt: skip


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_dependencies_install_in_a_layer_of_their_own_before_the_sources(image):
    stages = read_stages(DOCKERFILES[image])
    build = next(stage for stage in stages if uv_syncs(stage))
    order = [(kw, args) for kw, args in build.instructions if kw in ("COPY", "RUN")]
    first_sync = next(i for i, (kw, args) in enumerate(order) if kw == "RUN" and "uv sync" in args)
    first_source = next(
        i for i, (kw, args) in enumerate(order) if kw == "COPY" and args.split()[0] in SOURCES
    )

    assert first_sync < first_source, order
    assert "--frozen" in order[first_sync][1] and "--no-install-project" in order[first_sync][1]
    assert all("--frozen" in argv for argv in uv_syncs(build))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_final_stage_runs_as_a_user_without_build_tools(image):
    stages = read_stages(DOCKERFILES[image])
    final = stages[-1]
    names = {stage.name for stage in stages[:-1]}
    copies = final.arguments("COPY")
    runs = " ".join(final.arguments("RUN"))

    assert len(stages) >= 2 and final.base not in names  # a fresh base, not the build stage
    assert final.base.startswith("python:") and "slim" in final.base
    assert copies and all("--from=build" in c and "/app" in c for c in copies), copies
    assert not any(word in runs for word in ("apt-get", "pip install", "uv ", "gcc", "make "))
    user = final.arguments("USER")
    assert user and user[-1].split(":")[0] not in ("0", "root"), user
    assert command(final), "the image says what it runs"


def test_the_sidecar_image_needs_no_dagster_full_mlflow_or_feast_offline_extras(image_envs):
    sidecar = installed_distributions(image_envs["sidecar"])
    dagster = installed_distributions(image_envs["dagster"])

    assert not set(NOT_IN_SIDECAR) & set(sidecar), set(NOT_IN_SIDECAR) & set(sidecar)
    assert {"mlflow-skinny", "onnxruntime", "feast", "redis", "pyiceberg"} <= set(sidecar)
    assert set(NOT_IN_SIDECAR) <= set(dagster)
    assert sum(sidecar.values()) < 0.75 * sum(dagster.values())


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_image_build_checks_and_command_run(image, image_envs):
    env: ImageEnv = image_envs[image]
    final = read_stages(DOCKERFILES[image])[-1]
    checks = python_runs(final)
    assert checks, "the final stage checks that its modules import"

    for argv in [*checks, [*command(final), "--help"]]:
        done = env.run(argv)
        assert done.returncode == 0, f"`{shlex.join(argv)}` failed:\n{done.stderr[-3000:]}"
    assert "usage" in done.stdout.lower()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_dagster_image_serves_its_code_location(image_envs, tmp_path):
    """The image's command itself: a gRPC code server that loads the definitions and answers."""
    env: ImageEnv = image_envs["dagster"]
    argv = command(read_stages(DOCKERFILES["dagster"])[-1])
    port = str(_free_port())
    argv[argv.index("-p") + 1] = port
    argv[argv.index("-h") + 1] = "127.0.0.1"
    server = _start(env, argv, tmp_path / "code-server.log")
    try:
        deadline, health = time.monotonic() + 240, None
        while time.monotonic() < deadline and server.poll() is None:
            health = env.run(["dagster", "api", "grpc-health-check", "-p", port], timeout=60)
            if health.returncode == 0:
                break
            time.sleep(1.0)
        log = (tmp_path / "code-server.log").read_text()
        assert server.poll() is None, f"the code server exited:\n{log[-3000:]}"
        assert health is not None and health.returncode == 0, f"{health}\n{log[-3000:]}"
    finally:
        code = _stop(server)
    assert code == 0, "the code server did not stop cleanly on SIGTERM"


def _container_signals() -> None:
    """A container's process starts with SIGINT and SIGTERM at their defaults and unblocked,
    whatever the test run inherited (a run started in a shell's background ignores SIGINT, and
    dagster's code server maps SIGTERM to SIGINT's handler)."""
    stop = {signal.SIGINT, signal.SIGTERM}
    for number in stop:
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)


def _start(env: ImageEnv, argv: list[str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """``argv`` started as a container of ``env``'s image would run it, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(env.bin / argv[0]), *argv[1:]],
            cwd=env.app,
            env=env.environ() | extra,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_container_signals,
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _poll(url: str, ok: Callable[[httpx.Response], bool], timeout_s: float) -> httpx.Response:
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2.0)
            if ok(last):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered as expected; last: {last and last.text[:500]}")


def test_the_sidecar_image_serves_a_champion_from_an_mlflow_server(image_envs, tmp_path):
    """The sidecar image's own command, with the sidecar's dependencies alone: it reaches the
    MLflow server of the Dagster image over HTTP (mlflow-skinny), loads the champion and opens
    the embedded Feast store (applying feature_repo/ without Feast's offline extras)."""
    sidecar_env, dagster_env = image_envs["sidecar"], image_envs["dagster"]
    mlflow_port, sim_port, api_port = _free_port(), _free_port(), _free_port()
    tracking = f"http://127.0.0.1:{mlflow_port}"
    mlflow = _start(dagster_env, [
        "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(tmp_path / "artifacts"),
    ], tmp_path / "mlflow.log", **MLFLOW_ENV)  # fmt: skip
    market = f"127.0.0.1:{sim_port}"
    simulator = _start(sidecar_env, [
        "python", "-m", "streaming.simulator", "--host", "127.0.0.1", "--port", str(sim_port),
        "--symbols", "BTCUSDT", "--trades-per-day", "1000000",
    ], tmp_path / "simulator.log")  # fmt: skip
    processes = [mlflow, simulator]
    try:
        _poll(f"{tracking}/health", lambda r: r.status_code == 200, 120)
        version = register_decisive_model(tracking, tmp_path / "unused", "champion")
        final = read_stages(DOCKERFILES["sidecar"])[-1]
        processes.append(sidecar := _start(sidecar_env, [*command(final), "--port", str(api_port)],
            tmp_path / "sidecar.log", TRADING_INSTRUMENTS="BINANCE:BTCUSDT",
            MLFLOW_TRACKING_URI=tracking,
            BINANCE_WS_BASE_URL=f"ws://{market}", BINANCE_REST_BASE_URL=f"http://{market}",
            BINANCE_BULK_BASE_URL=f"http://{market}"))  # fmt: skip
        served = f'sidecar_model_version_info{{role="champion",version="{version}"}} 1.0'
        _poll(f"http://127.0.0.1:{api_port}/metrics", lambda r: served in r.text, 120)
        health = _poll(f"http://127.0.0.1:{api_port}/health", lambda r: True, 10)
        assert health.status_code == 200 and sidecar.poll() is None
    finally:
        codes = [_stop(process) for process in reversed(processes)]
    log = (tmp_path / "sidecar.log").read_text()
    assert "Traceback" not in log and "poll failed" not in log, log[-3000:]
    assert codes[0] == 0, f"the sidecar did not stop cleanly on SIGTERM:\n{log[-2000:]}"
