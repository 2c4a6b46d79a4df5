"""Real local servers for tests: a throwaway PostgreSQL cluster started from Debian's binaries."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL cluster on a free loopback port; remove it afterwards."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found (install Debian's postgresql)")
    # initdb refuses to run as root, so the cluster belongs to the postgres system user.
    as_user: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    user = "postgres" if as_user else os.environ.get("USER", "postgres")
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data = root / "data"
    if as_user:
        shutil.chown(root, user="postgres")
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8")
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(root / "log"),
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip
        yield PostgresServer("127.0.0.1", port, user)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    @property
    def connection_string(self) -> str:
        """Feast's Redis online store form: ``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a private, non-persistent redis-server on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found (`make test` installs it: apt-get install)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield RedisServer("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")
