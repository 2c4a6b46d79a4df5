"""Serve the Dagster side's metrics until SIGTERM or SIGINT (see the package docstring).

DAGSTER_HOME=/opt/dagster/dagster_home python -m trading_assets.metrics_exporter --port 9464
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

import dagster as dg
from prometheus_client import CollectorRegistry, start_http_server

from trading_assets.lib.settings import MLFLOW_REQUEST_BOUNDS, load_settings
from trading_assets.metrics_exporter import DEFAULT_PORT, build_registry
from trading_assets.metrics_exporter.model_aliases import bound_requests

log = logging.getLogger("trading_assets.metrics_exporter")


def serve(registry: CollectorRegistry, host: str, port: int, stop: threading.Event) -> None:
    """Serve ``registry`` on ``http://host:port/metrics`` until ``stop`` is set, then close the
    listening socket and wait for the server thread."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("serving metrics on http://%s:%d/metrics", host, server.server_port)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        log.info("metrics exporter stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trading_assets.metrics_exporter",
        description="Serve Prometheus metrics read from the Dagster instance (DAGSTER_HOME) "
        "and the MLflow registry: live-partition ingest lag per asset and symbol, model aliases.",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to serve (default {DEFAULT_PORT})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings()
    bound_requests({name: settings.tuning(name) or "" for name in MLFLOW_REQUEST_BOUNDS})
    try:
        instance = dg.DagsterInstance.get()
    except dg.DagsterError as error:  # DAGSTER_HOME unset, not a folder, a bad dagster.yaml
        print(f"metrics exporter: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with instance:
        registry = build_registry(instance, settings)
        # One read before serving: opening the stores (a sqlite MLflow store migrates its
        # tables) would otherwise make the first scrape late.
        list(registry.collect())
        serve(registry, args.host, args.port, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
