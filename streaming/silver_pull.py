"""Fallback level 4 out of the serving process: read silver and recompute the vector in a child.

A silver microbatch is read with pyiceberg and polars' Parquet reader and turned into features with
polars' rolling windows. Done in the serving process, a level 4 decision from a 20-minute
microbatch raised its peak RSS from 275 to 326 MB for good (the readers' buffers and code, once
touched, stay resident), and opening the catalog at start had cost 18 MB already (257 → 275 MB),
well past the sidecar's 300 MB budget, for a level that serves only while live and online data are
both gone. :class:`SubprocessSilver` therefore runs each pull as ``python -m
streaming.silver_pull``: the child reads the interval
(:class:`~streaming.fallback.silver.IcebergSilverMicrobatch`), recomputes the vector with the batch
definitions (``features_from_silver``), prints it as JSON and exits; the serving process never
opens the catalog nor runs polars' Parquet reader or rolling windows. A pull costs the child's
start (about 2 s of imports) on top of the read;
:class:`~streaming.prefetched_silver.PrefetchedSilver` runs it in a thread and the controller's
imputed level covers the meantime.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence

from streaming.fallback.decision import SilverFeatures

PULL_TIMEOUT_S = 120.0
# The catalog URI reaches the child through its environment, not its command line: a PostgreSQL
# catalog's URI carries a password, and every local user can read command lines.
CATALOG_URI_ENV = "TRADING_SILVER_PULL_CATALOG_URI"


class SilverPullError(RuntimeError):
    """The child process failed, timed out, or printed no result."""


class SubprocessSilver:
    """A silver source for the fallback controller that pulls in a child process (see module).

    ``names`` and ``bar_s``: the controller's feature order and bar length; the features follow
    the shared definitions (``DEFAULT_CONFIG``), as the controller's own recomputation does.
    """

    def __init__(
        self,
        catalog_uri: str,
        warehouse: str,
        names: Sequence[str],
        bar_s: int = 1,
        timeout_s: float = PULL_TIMEOUT_S,
    ) -> None:
        self.catalog_uri, self.warehouse = catalog_uri, warehouse
        self.names, self.bar_s, self.timeout_s = tuple(names), bar_s, timeout_s

    def command(self, symbol: str, start_ns: int, end_ns: int) -> list[str]:
        return [
            sys.executable, "-m", "streaming.silver_pull", "--warehouse", self.warehouse,
            "--symbol", symbol, "--start-ns", str(start_ns), "--end-ns", str(end_ns),
            "--names", ",".join(self.names), "--bar-s", str(self.bar_s),
        ]  # fmt: skip

    def __call__(self, symbol: str, start_ns: int, end_ns: int) -> SilverFeatures:
        try:
            done = subprocess.run(
                self.command(symbol, start_ns, end_ns),
                capture_output=True,
                timeout=self.timeout_s,
                stdin=subprocess.DEVNULL,
                env={**os.environ, CATALOG_URI_ENV: self.catalog_uri},
            )
        except subprocess.TimeoutExpired as exc:
            raise SilverPullError(f"silver pull for {symbol} took over {exc.timeout:g} s") from exc
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SilverPullError(
                f"silver pull for {symbol} exited with {done.returncode}: {tail[0]}"
            )
        features = decode_result(done.stdout)
        if features.result is not None and tuple(features.result[0]) != self.names:
            raise SilverPullError(f"silver pull for {symbol} returned other features than asked")
        return features


def encode_result(features: SilverFeatures) -> bytes:
    if features.result is None:
        return b"null\n"
    vector, event_time_ns = features.result
    # NaN (book features, warm-up) is not JSON: None stands for it on the wire.
    values = {k: (None if v != v else v) for k, v in vector.items()}
    return json.dumps({"vector": values, "event_time_ns": event_time_ns}).encode() + b"\n"


def decode_result(out: bytes) -> SilverFeatures:
    lines = out.strip().splitlines()
    if not lines:
        raise SilverPullError("silver pull printed no result")
    body = json.loads(lines[-1])
    if body is None:
        return SilverFeatures(None)
    vector = {k: (float("nan") if v is None else float(v)) for k, v in body["vector"].items()}
    return SilverFeatures((vector, int(body["event_time_ns"])))


def main(argv: Sequence[str] | None = None) -> None:
    """Child: one pull, its result as one JSON line on stdout."""
    from streaming.fallback.silver import IcebergSilverMicrobatch, features_from_silver
    from trading_assets.lib.features import DEFAULT_CONFIG
    from trading_assets.lib.lakehouse.pipeline import Lakehouse
    from trading_assets.lib.lakehouse.tables import open_catalog

    parser = argparse.ArgumentParser(prog="python -m streaming.silver_pull")
    for name in ("--warehouse", "--symbol", "--names"):
        parser.add_argument(name, required=True)
    for name in ("--start-ns", "--end-ns"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--bar-s", type=int, default=1)
    args = parser.parse_args(argv)
    uri = os.environ.get(CATALOG_URI_ENV)
    if not uri:
        parser.error(f"{CATALOG_URI_ENV} must name the Iceberg catalog")
    catalog = open_catalog("trading", {"type": "sql", "uri": uri, "warehouse": args.warehouse})
    source = IcebergSilverMicrobatch(Lakehouse(catalog, f"{args.warehouse}/raw"))
    trades = source(args.symbol, args.start_ns, args.end_ns)
    names = args.names.split(",")
    result = features_from_silver(trades, names, DEFAULT_CONFIG, args.bar_s)
    sys.stdout.buffer.write(encode_result(SilverFeatures(result)))


if __name__ == "__main__":
    main()
