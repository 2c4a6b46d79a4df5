"""The model chain with nothing on a shared disk: training frames and model files pass between
the assets through a real S3 server (SeaweedFS), as they do in production, where each run
worker may be another machine."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import dagster as dg
import pytest

from tests.dagster.test_models_assets import MODELS, RECENT_ROWS, synthetic_frame
from trading_assets.defs.models.registry import MODEL_SHA256, beats_baselines, onnx_parity
from trading_assets.lib import storage
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.recent import RECENT_PREFIX
from trading_assets.lib.feature_store.training import write_training_frame
from trading_assets.lib.models import artifacts as files
from trading_assets.resources import build_resources
from trading_assets.resources.feast import TRAINING_FOLDER
from trading_assets.servers import S3Server, ensure_buckets

pytestmark = pytest.mark.prod

MODEL_FILES = [files.FULL_FILE, files.INCREMENTAL_FILE, files.ONNX_FILE]
BUCKET = "models-test"


@pytest.fixture
def prefix(s3_server: S3Server, monkeypatch, tmp_path) -> str:
    """A fresh ``s3://bucket/<test>`` holding this test's models and Feast offline data, set as
    the environment sets them; the local data folder holds only MLflow's embedded store."""
    ensure_buckets(s3_server, [BUCKET])
    root = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    environ = s3_server.env() | {
        "TRADING_ENV": "local",
        "TRADING_DATA_DIR": str(tmp_path / "data"),
        "TRADING_MODELS_URI": f"{root}/models",
        "FEAST_OFFLINE_ROOT": f"{root}/feast/offline",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return root


def objects_under(server: S3Server, location: str) -> dict[str, bytes]:
    """What the server holds under ``location``, read with a client of its own (boto3)."""
    bucket, _, key_prefix = location.removeprefix("s3://").partition("/")
    client = server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{key_prefix}/")
    return {
        item["Key"].removeprefix(f"{key_prefix}/"): client.get_object(
            Bucket=bucket, Key=item["Key"]
        )["Body"].read()
        for item in listed.get("Contents", [])
    }


def test_the_model_chain_passes_frames_and_models_through_s3(prefix, s3_server, tmp_path):
    # Arrange: the resources as the environment builds them; the training frames on S3
    resources = build_resources()
    feast, mlflow = resources["feast"], resources["mlflow"]
    frame = synthetic_frame(seed=3, informative=True)
    training_dir = feast.training_dir()
    write_training_frame(frame, training_dir, spec.TRAINING_SERVICE)
    recent = frame.sort(spec.TIMESTAMP_FIELD).tail(RECENT_ROWS)
    write_training_frame(recent, training_dir, RECENT_PREFIX + spec.TRAINING_SERVICE)

    # Act
    result = dg.materialize(
        [*MODELS, onnx_parity, beats_baselines],
        resources={"feast": feast, "mlflow": mlflow},
        run_config={"ops": {"full_model": {"config": {"n_trees": 60}}}},
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )

    # Assert: the whole chain ran, with every file on the server and none on the local disk
    assert result.success
    models = objects_under(s3_server, f"{prefix}/models")
    assert sorted(models) == sorted(MODEL_FILES)
    frames = objects_under(s3_server, f"{prefix}/feast/offline")
    assert sorted(frames) == [
        f"{TRAINING_FOLDER}/{RECENT_PREFIX}{spec.TRAINING_SERVICE}.parquet",
        f"{TRAINING_FOLDER}/{spec.TRAINING_SERVICE}.parquet",
    ]
    local_files = {p.name for p in Path(tmp_path).rglob("*") if p.is_file()}
    assert not local_files & {files.FULL_FILE, files.INCREMENTAL_FILE}
    assert not any(name.endswith(".parquet") for name in local_files)

    # Assert: the metadata shows where the files are, and the registration's digest is that
    # of the incremental model the server holds
    (full,) = result.asset_materializations_for_node("full_model")
    assert full.metadata["path"].value == f"{prefix}/models/{files.FULL_FILE}"
    (onnx,) = result.asset_materializations_for_node("onnx_model")
    assert onnx.metadata["path"].value == f"{prefix}/models/{files.ONNX_FILE}"
    assert onnx.metadata["bytes"].value == len(models[files.ONNX_FILE])
    (registered,) = result.asset_materializations_for_node("registered_model")
    digest = hashlib.sha256(models[files.INCREMENTAL_FILE]).hexdigest()
    assert registered.metadata[MODEL_SHA256].value == digest
    incremental = files.load_model(mlflow.model_location(files.INCREMENTAL_FILE))
    assert incremental.training_rows == RECENT_ROWS


def test_a_model_file_is_replaced_listed_and_removed_on_s3(prefix):
    # Arrange
    location = storage.join(prefix, "models", files.INCREMENTAL_FILE)
    first, second = b'{"version": 1}', b'{"version": 2}'

    # Act
    storage.write_bytes_atomic(location, first)
    storage.write_bytes_atomic(location, second)

    # Assert: a replacement leaves one object, the newest, and a missing one reads as missing
    assert storage.read_bytes(location) == second
    assert storage.list_files(storage.join(prefix, "models")) == [location]
    assert storage.exists(location)
    assert not storage.exists(storage.join(prefix, "models", files.FULL_FILE))
    with pytest.raises(FileNotFoundError):
        files.load_model_and_digest(storage.join(prefix, "models", files.FULL_FILE))
    assert storage.delete(location) and not storage.exists(location)
