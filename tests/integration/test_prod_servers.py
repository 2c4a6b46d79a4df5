"""The production profile's servers as the project starts them (trading_assets.servers): S3 that
refuses strangers, PostgreSQL and Redis that keep their data across a restart, and an MLflow server
whose clients reach S3 only through it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.retry import Retry
from sqlalchemy.exc import OperationalError

from trading_assets.servers import DATABASES, S3Server, redis_server

pytestmark = [pytest.mark.prod, pytest.mark.integration]

# Logs one artifact through the tracking server, downloads it back, and prints what it got.
MLFLOW_CLIENT = """
import json, sys
from pathlib import Path

import mlflow

url, work = sys.argv[1], Path(sys.argv[2])
mlflow.set_tracking_uri(url)
mlflow.set_experiment("prod-servers")
(work / "note.txt").write_text("proxied through the tracking server")
with mlflow.start_run() as run:
    mlflow.log_artifact(str(work / "note.txt"), artifact_path="notes")
back = mlflow.artifacts.download_artifacts(
    run_id=run.info.run_id, artifact_path="notes/note.txt", dst_path=str(work / "back")
)
print(json.dumps({
    "run_id": run.info.run_id,
    "artifact_uri": run.info.artifact_uri,
    "downloaded": Path(back).read_text(),
}))
"""


def s3_client(server: S3Server, secret: str | None) -> Any:
    """A client signing with ``secret`` (None: unsigned requests)."""
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})
    if secret is None:
        config = config.merge(Config(signature_version=UNSIGNED))
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=secret or "unused",
        config=config,
    )


def process_group(group: int) -> list[int]:
    """The processes in ``group`` (``/proc/<pid>/stat``'s fifth field)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # exited meanwhile
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == group:
                members.append(int(stat.parent.name))
    return members


def refused_status(call) -> int:
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_s3_serves_its_credentials_and_refuses_everyone_else(s3_server):
    client, bucket = s3_server.client(), "prod-credentials"
    client.create_bucket(Bucket=bucket)

    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"payload")
    body = client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read()
    listed = client.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]
    unsigned, forged = s3_client(s3_server, None), s3_client(s3_server, "not-the-secret")
    strangers = {
        "unsigned get": lambda: unsigned.get_object(Bucket=bucket, Key="a/b.txt"),
        "unsigned list": lambda: unsigned.list_objects_v2(Bucket=bucket),
        "unsigned put": lambda: unsigned.put_object(Bucket=bucket, Key="x", Body=b""),
        "wrong secret get": lambda: forged.get_object(Bucket=bucket, Key="a/b.txt"),
    }

    assert body == b"payload"
    assert [entry["Key"] for entry in listed] == ["a/b.txt"]
    refused = {name: refused_status(call) for name, call in strangers.items()}
    assert refused == dict.fromkeys(strangers, 403)


def test_s3_keeps_objects_across_a_restart(s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="prod-restart")
    client.put_object(Bucket="prod-restart", Key="kept.bin", Body=b"\x00\x01kept")

    s3_server.restart()

    body = s3_server.client().get_object(Bucket="prod-restart", Key="kept.bin")["Body"].read()
    assert body == b"\x00\x01kept"


def test_postgres_has_the_profile_databases_behind_a_password(postgres):
    wrong = sa.create_engine(dataclasses.replace(postgres, password="wrong").url())

    with sa.create_engine(postgres.url()).connect() as connection:
        names = set(connection.execute(sa.text("SELECT datname FROM pg_database")).scalars())

    assert set(DATABASES) <= names
    with pytest.raises(OperationalError, match="password authentication failed"):
        wrong.connect()


def test_postgres_keeps_a_row_across_a_restart(postgres):
    engine = sa.create_engine(postgres.url("feast"), pool_pre_ping=True)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE kept (id int, note text)"))
        connection.execute(sa.text("INSERT INTO kept VALUES (1, 'before the restart')"))

    postgres.restart()

    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, note FROM kept")).all()
    assert rows == [(1, "before the restart")]


def test_redis_keeps_a_key_across_a_restart_and_wants_its_password():
    with redis_server(password=secrets.token_hex(8)) as redis:
        Redis.from_url(redis.url).set("kept", "before the restart")

        redis.restart()

        assert Redis.from_url(redis.url).get("kept") == b"before the restart"
        assert redis.connection_string == f"{redis.host}:{redis.port},password={redis.password}"
        # No retries: redis-py retries an AuthenticationError (a ConnectionError) with backoff.
        with pytest.raises(AuthenticationError):
            Redis(host=redis.host, port=redis.port, retry=Retry(NoBackoff(), 0)).get("kept")


def test_mlflow_server_runs_one_worker_and_no_job_runners(mlflow_server):
    members = process_group(mlflow_server.process.popen.pid)

    # `mlflow server` and its one uvicorn worker; MLflow's job runner and huey consumers are off.
    assert len(members) == 2
    assert mlflow_server.process.service.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_mlflow_clients_store_artifacts_in_s3_through_the_server(
    mlflow_server, s3_server, postgres, tmp_path
):
    # No S3 variable, no ~/.aws: the client can reach S3 only through the tracking server.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    env["HOME"] = str(tmp_path)

    done = subprocess.run(
        [sys.executable, "-c", MLFLOW_CLIENT, mlflow_server.tracking_url, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["downloaded"] == "proxied through the tracking server"
    assert result["artifact_uri"].startswith("mlflow-artifacts:")
    bucket, prefix = mlflow_server.artifacts_destination.removeprefix("s3://").split("/", 1)
    stored = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")["Contents"]
    assert any(
        entry["Key"].endswith(f"{result['run_id']}/artifacts/notes/note.txt") for entry in stored
    )
    with sa.create_engine(postgres.url("mlflow"), pool_pre_ping=True).connect() as connection:
        runs = connection.execute(
            sa.text("SELECT status FROM runs WHERE run_uuid = :id"), {"id": result["run_id"]}
        ).all()
    assert runs == [("FINISHED",)]
