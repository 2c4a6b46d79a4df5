"""The model registry on the production profile's MLflow server, whose artifacts the server
proxies to S3: a client registers, judges and promotes a version, and the sidecar's model watcher
mirrors it, both with the tracking URL alone and no S3 credentials anywhere in their
environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from streaming.model_files import mirror_dir, read_manifest, read_model
from streaming.watcher_process import WatcherProcess
from tests.integration.test_inference_swap import END, NAMES, START, exported
from trading_assets.lib.models.registry import ARTIFACT_DIR, ONNX_FILE, register_model
from trading_assets.lib.settings import BY_NAME
from trading_assets.servers import MlflowServer, S3Server, free_port

pytestmark = [pytest.mark.prod, pytest.mark.integration, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_PREFIXES = ("AWS_", "MLFLOW_S3_")

# The registered_model asset's registration, the evaluation gate's verdict and the rollout's
# @champion, with the MLflow resource the local profile builds when MLFLOW_TRACKING_URI names a
# server: its artifact_location is the local artifacts folder, which a server must not receive.
CLIENT = """
import datetime as dt, json, sys
from pathlib import Path

from trading_assets.lib.models.registry import record_gate_verdict, register_model, set_alias
from trading_assets.resources import build_resources

onnx_file, names = Path(sys.argv[1]), sys.argv[2].split(",")
mlflow = build_resources()["mlflow"]
version = register_model(
    mlflow.ready_uri(), mlflow.model_name, onnx_file.read_bytes(), names, "signal_v1",
    dt.datetime.fromisoformat(sys.argv[3]), dt.datetime.fromisoformat(sys.argv[4]),
    metrics={"ic": 0.05}, params={"max_depth": 3}, artifact_location=mlflow.artifact_location,
)
record_gate_verdict(mlflow.ready_uri(), mlflow.model_name, version.version, True, "beat them")
set_alias(mlflow.ready_uri(), mlflow.model_name, "champion", version.version)
print(json.dumps({
    "version": str(version.version), "run_id": version.run_id, "source": version.source,
    "artifact_location": mlflow.artifact_location,
}))
"""


def without_credentials(home: Path) -> dict[str, str]:
    """This process's environment less every S3 credential and every project setting, with a
    home of its own (no ~/.aws to fall back on)."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CREDENTIAL_PREFIXES) and name not in BY_NAME
    }
    home.mkdir(parents=True, exist_ok=True)
    return kept | {"HOME": str(home)}


def s3_keys(server: S3Server, bucket: str, prefix: str) -> list[str]:
    """The bucket's keys under ``prefix``, listed with the server's own credentials (boto3)."""
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


async def wait_for(condition, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def mirrored_champion(mirror: Path) -> Any:
    manifest = read_manifest(mirror)
    entry = None if manifest is None else manifest.roles.get("champion")
    return entry if entry is not None and entry.servable else None


async def test_a_champion_registered_through_the_server_is_mirrored_without_s3_credentials(
    mlflow_server: MlflowServer, s3_server: S3Server, tmp_path: Path, monkeypatch
):
    # Arrange: an ONNX model, and a client environment with the tracking URL and no credentials
    name = f"signal_{uuid.uuid4().hex[:8]}"
    onnx_bytes = exported(tuple(NAMES), 4)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(onnx_bytes)
    client_data = tmp_path / "client-data"
    environ = without_credentials(tmp_path / "home") | {
        "TRADING_ENV": "local",
        "TRADING_DATA_DIR": str(client_data),
        "MLFLOW_TRACKING_URI": mlflow_server.tracking_url,
        "MLFLOW_MODEL_NAME": name,
    }

    # Act: register, judge and promote from that environment
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(onnx_file), ",".join(NAMES),
         START.isoformat(), END.isoformat()],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    registered = json.loads(done.stdout.strip().splitlines()[-1])

    # Act: the sidecar's model watcher (its own process, supervised as the sidecar does) in the
    # same kind of environment
    for variable in [v for v in os.environ if v.startswith(CREDENTIAL_PREFIXES)]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    mirror = mirror_dir(tmp_path / "sidecar", name)
    watcher = WatcherProcess(mlflow_server.tracking_url, name, mirror, poll_s=0.2)
    supervisor = asyncio.create_task(watcher.supervise())
    try:
        await wait_for(lambda: mirrored_champion(mirror) is not None)
    finally:
        supervisor.cancel()
        with pytest.raises(asyncio.CancelledError):
            await supervisor

    # Assert: the mirrored champion is the registered version, byte for byte
    entry = mirrored_champion(mirror)
    assert entry.version == registered["version"]
    served = read_model(mirror, entry)
    assert served.onnx_bytes == onnx_bytes
    assert (mirror / str(entry.onnx)).read_bytes() == onnx_bytes
    assert served.feature_names == NAMES
    assert watcher.restarts == 0

    # Assert: the artifacts went through the server, which keeps them in its bucket under
    # mlflow/; nothing was written to the client's local artifacts folder
    client = MlflowClient(tracking_uri=mlflow_server.tracking_url)
    run = client.get_run(registered["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert registered["source"].startswith("mlflow-artifacts:")
    bucket, _, prefix = mlflow_server.artifacts_destination.removeprefix("s3://").partition("/")
    onnx_keys = [
        key
        for key in s3_keys(s3_server, bucket, f"{prefix}/")
        if registered["run_id"] in key and key.endswith(f"/{ARTIFACT_DIR}/{ONNX_FILE}")
    ]
    assert len(onnx_keys) == 1 and onnx_keys[0].startswith("mlflow/")
    stored = s3_server.client().get_object(Bucket=bucket, Key=onnx_keys[0])["Body"].read()
    assert stored == onnx_bytes
    assert registered["artifact_location"] == str(client_data / "mlflow" / "artifacts")
    assert not (client_data / "mlflow" / "artifacts").exists()


def test_a_server_experiment_rooted_on_a_local_folder_is_refused(
    mlflow_server: MlflowServer, tmp_path: Path
):
    # Arrange: an experiment someone created on the server with a folder of their own disk
    client = MlflowClient(tracking_uri=mlflow_server.tracking_url)
    experiment = f"local-rooted-{uuid.uuid4().hex[:8]}"
    client.create_experiment(experiment, artifact_location=str(tmp_path / "artifacts"))

    # Act / Assert: registering there would leave the model on this machine alone
    with pytest.raises(ValueError, match="local folder"):
        register_model(
            mlflow_server.tracking_url,
            f"signal_{uuid.uuid4().hex[:8]}",
            exported(tuple(NAMES), 4),
            NAMES,
            "signal_v1",
            START,
            END,
            metrics={},
            params={},
            experiment=experiment,
        )
    assert not (tmp_path / "artifacts").exists()


async def test_an_unreachable_server_is_reported_by_the_watcher_within_seconds(tmp_path: Path):
    # Arrange: a tracking URL nothing answers at (MLflow's own retries would take minutes)
    unreachable = f"http://127.0.0.1:{free_port()}"
    mirror = mirror_dir(tmp_path / "sidecar", "signal")
    watcher = WatcherProcess(unreachable, "signal", mirror, poll_s=0.2)
    started = time.monotonic()

    # Act
    supervisor = asyncio.create_task(watcher.supervise())
    try:
        await wait_for(lambda: (m := read_manifest(mirror)) is not None and m.registry_error)
    finally:
        supervisor.cancel()
        with pytest.raises(asyncio.CancelledError):
            await supervisor

    # Assert: the failed poll is in the manifest well within a minute, with nothing to serve
    manifest = read_manifest(mirror)
    assert manifest is not None and manifest.roles == {}
    assert "MlflowException" in str(manifest.registry_error)
    assert time.monotonic() - started < 60
