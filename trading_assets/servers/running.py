"""Servers run by a test: the same commands as the supervised services, on free loopback ports in
temporary folders removed afterwards, each stoppable and restartable on the same port and data."""

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
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from trading_assets.servers.addresses import (
    Controls,
    MlflowServer,
    PostgresServer,
    RedisServer,
    S3Server,
)
from trading_assets.servers.services import (
    SEAWEEDFS_PORTS,
    ensure_buckets,
    mlflow_service,
    pg_bin,
    postgres_service,
    prepare_postgres,
    redis_service,
    s3_service,
)
from trading_assets.supervisor import GRACE_S, KILL_WAIT_S, Service

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 120.0  # MLflow's first start migrates an empty database


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

    def service(root: Path) -> Service:
        prepare_postgres(root, server.user, server.password, durable=durable)
        return postgres_service(root, server, durable=durable)

    with _serve("pg-", server, service, lambda: _pg_ready(server)) as running:
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


def _pg_ready(server: PostgresServer) -> bool:
    """Accepting connections, past recovery (the port opens before it)."""
    probe = [str(pg_bin() / "pg_isready"), "-q", "-h", server.host, "-p", str(server.port)]
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
