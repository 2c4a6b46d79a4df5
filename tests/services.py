"""Real local servers for tests, started the way the production profile starts them
(:mod:`trading_assets.servers`)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator

from trading_assets import servers
from trading_assets.servers import PostgresServer, RedisServer, free_port, postgres_server

__all__ = ["PostgresServer", "RedisServer", "free_port", "postgres_server", "redis_server"]


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server without a password or persistence: the Feast tests and the
    benchmarks talk to it as ``Redis(host, port)`` and measure it without an append-only file."""
    with servers.redis_server(appendonly=False) as server:
        yield server


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
