"""The whole-system benchmark's MLflow helpers against a real MLflow server (the one ``make run``
starts): a copied version keeps the artifact, run and registration tags of its original and drops
the rollout's, and an alias set through the REST API is read back the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from bench.system_run import LOOPBACK, MODEL_NAME, RunningSystem
from tests.services import _wait_for_port, free_port
from trading_assets.servers.services import MLFLOW_ENV, MLFLOW_WORKERS


@pytest.fixture
def mlflow_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    # As `make run` starts it: one worker, no job consumers.
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{tmp_path / 'mlflow.db'}", "--host", LOOPBACK, "--port", str(port),
         "--workers", str(MLFLOW_WORKERS)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        env=os.environ | MLFLOW_ENV,
    )  # fmt: skip
    try:
        _wait_for_port(port, process, timeout=120.0)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_copied_version_keeps_artifact_run_and_tags_but_not_the_rollouts(mlflow_url, tmp_path):
    client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
    run = client.create_run(client.create_experiment("registrations"))
    client.create_registered_model(MODEL_NAME)
    source = f"runs:/{run.info.run_id}/model"
    tags = {"feature_service": "signal_v1", "gate.ic": "0.041"}
    rollout = {"rollout.stage": "shadow", "rollout.shadow_predictions": "30"}
    original = client.create_model_version(MODEL_NAME, source, run.info.run_id, tags=tags | rollout)
    system = RunningSystem(tmp_path, {}, history_days=1)
    system.ports.mlflow = int(mlflow_url.rsplit(":", 1)[1])

    listed = {v["version"]: v for v in system.model_versions()}
    copy = system.copy_version(listed[original.version])
    system.set_alias("champion", copy["version"])

    stored = client.get_model_version(MODEL_NAME, copy["version"])
    assert copy["version"] != original.version
    assert (stored.source, stored.run_id) == (source, run.info.run_id)
    assert stored.tags == tags
    assert client.get_model_version(MODEL_NAME, original.version).tags == tags | rollout
    champion = system.version_by_alias("champion")
    assert champion is not None and champion["version"] == copy["version"]
    assert system.version_by_alias("canary") is None
