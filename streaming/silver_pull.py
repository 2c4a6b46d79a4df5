"""Fallback level 4 out of the serving process: read silver and recompute the vector in a worker.

A silver microbatch is read with pyiceberg and polars' Parquet reader and turned into features with
polars' rolling windows. Done in the serving process, a level 4 decision from a 20-minute
microbatch raised its peak RSS from 275 to 326 MB for good (the readers' buffers and code, once
touched, stay resident), and opening the catalog at start had cost 18 MB already (257 → 275 MB),
well past the sidecar's 300 MB budget, for a level that serves only while live and online data are
both gone.

:class:`SubprocessSilver` therefore sends each pull to a worker process, ``python -m
streaming.silver_pull``, over its stdin: one JSON request per line (symbol and interval), one
JSON line back with the vector recomputed by the batch definitions (``features_from_silver``) or
the error. The worker starts on the first pull (about 2 s of imports, which the controller's
imputed level covers), serves the next ones without starting again (in safe mode the controller
retries every ``silver_retry_s``), and exits once idle for ``idle_exit_s`` or when the sidecar
goes (its stdin closes), so its memory is held only while level 4 is in use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from streaming.fallback.decision import SilverFeatures

PULL_TIMEOUT_S = 120.0
IDLE_EXIT_S = 120.0
# The catalog URI reaches the worker through its environment, not its command line: a PostgreSQL
# catalog's URI carries a password, and every local user can read command lines.
CATALOG_URI_ENV = "TRADING_SILVER_PULL_CATALOG_URI"


class SilverPullError(RuntimeError):
    """The worker failed the pull, timed out, or went away."""


class SubprocessSilver:
    """A silver source for the fallback controller that pulls in a worker process (see module).

    ``names`` and ``bar_s``: the controller's feature order and bar length; the features follow
    the shared definitions (``DEFAULT_CONFIG``), as the controller's own recomputation does.
    Pulls from several threads are served one at a time.
    """

    def __init__(
        self,
        catalog_uri: str,
        warehouse: str,
        names: Sequence[str],
        bar_s: int = 1,
        timeout_s: float = PULL_TIMEOUT_S,
        idle_exit_s: float = IDLE_EXIT_S,
    ) -> None:
        self.catalog_uri, self.warehouse = catalog_uri, warehouse
        self.names, self.bar_s = tuple(names), bar_s
        self.timeout_s, self.idle_exit_s = timeout_s, idle_exit_s
        self.starts = 0  # workers started so far
        self._closed = False
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "streaming.silver_pull", "--warehouse", self.warehouse,
            "--names", ",".join(self.names), "--bar-s", str(self.bar_s),
            "--idle-exit-s", str(self.idle_exit_s),
        ]  # fmt: skip

    @property
    def pid(self) -> int | None:
        """The running worker's pid (None when none runs)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def __call__(self, symbol: str, start_ns: int, end_ns: int) -> SilverFeatures:
        request = json.dumps({"symbol": symbol, "start_ns": start_ns, "end_ns": end_ns})
        with self._lock:
            try:
                line = self._exchange(request.encode() + b"\n")
            except _WorkerGone:
                # It may have just exited idle as the request went out: once more, on a new one.
                line = self._exchange(request.encode() + b"\n")
        features = decode_result(line, symbol)
        if features.result is not None and tuple(features.result[0]) != self.names:
            raise SilverPullError(f"silver pull for {symbol} returned other features than asked")
        return features

    def close(self) -> None:
        """Stop the worker, if one runs, without waiting for a pull in flight (it fails)."""
        self._closed = True
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()  # a pull in flight reads end of file at once and lets go of the lock
        with self._lock:
            self._stop()

    def _exchange(self, request: bytes) -> bytes:
        process = self._worker()
        stdin, stdout = _pipes(process)
        try:
            stdin.write(request)
            stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self._stop()
            raise _WorkerGone from exc
        ready, _, _ = select.select([stdout], [], [], self.timeout_s)
        if not ready:
            self._stop()
            raise SilverPullError(f"silver pull took over {self.timeout_s:g} s")
        line = stdout.readline()
        if not line:  # end of file: the worker exited
            self._stop()
            raise _WorkerGone(f"silver pull worker exited with {process.returncode}")
        return line

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._closed:
            raise SilverPullError("the silver source is closed")
        if self._process is None or self._process.poll() is not None:
            # Its stderr is the sidecar's: the worker's own errors reach the sidecar's log.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, CATALOG_URI_ENV: self.catalog_uri},
            )
            self.starts += 1
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):  # one pair of descriptors per worker
            if pipe is not None:
                with contextlib.suppress(OSError):  # a write nobody reads any more
                    pipe.close()


class _WorkerGone(SilverPullError):
    """The worker exited (an idle exit, a crash) before answering."""


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert process.stdin is not None and process.stdout is not None
    return process.stdin, process.stdout


def encode_result(features: SilverFeatures) -> bytes:
    if features.result is None:
        return b"null\n"
    vector, event_time_ns = features.result
    # NaN (book features, warm-up) is not JSON: None stands for it on the wire.
    values = {k: (None if v != v else v) for k, v in vector.items()}
    return json.dumps({"vector": values, "event_time_ns": event_time_ns}).encode() + b"\n"


def decode_result(line: bytes, symbol: str) -> SilverFeatures:
    body: Any = json.loads(line)
    if body is None:
        return SilverFeatures(None)
    if "error" in body:
        raise SilverPullError(f"silver pull for {symbol} failed: {body['error']}")
    vector = {k: (float("nan") if v is None else float(v)) for k, v in body["vector"].items()}
    return SilverFeatures((vector, int(body["event_time_ns"])))


def main(argv: Sequence[str] | None = None) -> None:
    """Worker: answer pull requests from stdin until idle or until stdin closes."""
    from streaming.fallback.silver import IcebergSilverMicrobatch, features_from_silver
    from trading_assets.lib.features import DEFAULT_CONFIG
    from trading_assets.lib.lakehouse.pipeline import Lakehouse
    from trading_assets.lib.lakehouse.tables import open_catalog
    from trading_assets.lib.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m streaming.silver_pull")
    for name in ("--warehouse", "--names"):
        parser.add_argument(name, required=True)
    parser.add_argument("--bar-s", type=int, default=1)
    parser.add_argument("--idle-exit-s", type=float, default=IDLE_EXIT_S)
    args = parser.parse_args(argv)
    uri = os.environ.get(CATALOG_URI_ENV)
    if not uri:
        parser.error(f"{CATALOG_URI_ENV} must name the Iceberg catalog")
    properties = {"type": "sql", "uri": uri, "warehouse": args.warehouse}
    if args.warehouse.startswith("s3://"):
        properties |= load_settings().s3.pyiceberg_properties()
    catalog = open_catalog("trading", properties)
    source = IcebergSilverMicrobatch(Lakehouse(catalog, f"{args.warehouse}/raw"))
    names = args.names.split(",")
    requests, out = sys.stdin.buffer, sys.stdout.buffer
    idle_since = time.monotonic()
    while True:
        # One request at a time: the sidecar waits for each answer, so nothing sits buffered.
        ready, _, _ = select.select([requests], [], [], 1.0)
        if not ready:
            if time.monotonic() - idle_since >= args.idle_exit_s:
                return
            continue
        line = requests.readline()
        if not line:  # the sidecar went away
            return
        try:
            request = json.loads(line)
            trades = source(request["symbol"], request["start_ns"], request["end_ns"])
            answer = encode_result(
                SilverFeatures(features_from_silver(trades, names, DEFAULT_CONFIG, args.bar_s))
            )
        except Exception as exc:  # reported to the sidecar, which records it; the worker goes on
            answer = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n"
        out.write(answer)
        out.flush()
        idle_since = time.monotonic()


if __name__ == "__main__":
    main()
