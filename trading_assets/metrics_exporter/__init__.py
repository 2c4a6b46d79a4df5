"""``python -m trading_assets.metrics_exporter``: the Dagster side's Prometheus metrics.

Dagster keeps what the freshness alerts need (when each live partition was last materialized)
in its instance storage, not in a process Prometheus could scrape. This small server reads the
instance (``DAGSTER_HOME``'s ``dagster.yaml``: sqlite locally, PostgreSQL in production) and the
MLflow registry each time it is scraped and serves the answer on ``/metrics``:

* ``trading_asset_last_materialization_timestamp_seconds{asset, symbol}`` and
  ``trading_live_partition_ingest_lag_seconds{asset, symbol}`` for each live-ingest asset
  (:mod:`trading_assets.metrics_exporter.live_ingest`);
* ``trading_model_alias_info{model, alias, version}`` from the registry
  (:mod:`trading_assets.metrics_exporter.model_aliases`);
* ``trading_dagster_instance_up`` and ``trading_model_registry_up``: whether each source answered;
* the exporter's own ``process_*`` series.

Nothing is cached between scrapes: Prometheus' scrape interval is the polling interval.
"""

from __future__ import annotations

import dagster as dg
from prometheus_client import CollectorRegistry, ProcessCollector

from trading_assets.lib.settings import Settings
from trading_assets.metrics_exporter.live_ingest import LIVE_INGEST_ASSETS, LiveIngestCollector
from trading_assets.metrics_exporter.model_aliases import ModelAliasCollector

DEFAULT_PORT = 9464

__all__ = [
    "DEFAULT_PORT",
    "LIVE_INGEST_ASSETS",
    "LiveIngestCollector",
    "ModelAliasCollector",
    "build_registry",
]


def build_registry(
    instance: dg.DagsterInstance, settings: Settings, process: bool = True
) -> CollectorRegistry:
    """A registry of its own holding the exporter's collectors for ``settings``' symbols and
    registered model (``process``: with this process' ``process_*`` series too)."""
    registry = CollectorRegistry()
    registry.register(LiveIngestCollector(instance, settings.instruments))
    registry.register(ModelAliasCollector(settings.mlflow_tracking_uri, settings.mlflow_model_name))
    if process:
        ProcessCollector(registry=registry)
    return registry
