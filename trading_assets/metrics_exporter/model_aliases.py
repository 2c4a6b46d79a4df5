"""Where the registered model's aliases point in the MLflow registry, read when Prometheus
scrapes: the registry side of "is every sidecar serving the @champion?".

The sidecar shows what it serves (``sidecar_model_version_info{role, version}``); this collector
shows what the registry names (``trading_model_alias_info{model, alias, version}``), so an alert
can compare the two by version. A scrape must answer within Prometheus' scrape timeout, so the
client asks a server once, without retries, and waits at most :data:`REQUEST_TIMEOUT_S`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric

from trading_assets.lib.settings import MLFLOW_REQUEST_BOUNDS

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 5.0
MAX_RETRIES, BACKOFF_FACTOR, TIMEOUT = MLFLOW_REQUEST_BOUNDS


def scrape_request_bounds(configured: Mapping[str, str]) -> dict[str, str]:
    """MLflow's request variables for a scrape: no retries, and the configured timeout capped at
    :data:`REQUEST_TIMEOUT_S` (``configured``: the settings' values, by variable name)."""
    timeout = min(float(configured.get(TIMEOUT) or REQUEST_TIMEOUT_S), REQUEST_TIMEOUT_S)
    return {MAX_RETRIES: "0", BACKOFF_FACTOR: "0", TIMEOUT: f"{timeout:g}"}


def bound_requests(configured: Mapping[str, str]) -> None:
    """Set MLflow's own request variables (its client reads them at each request) for scrapes."""
    os.environ.update(scrape_request_bounds(configured))


class ModelAliasCollector:
    """``trading_model_alias_info`` (1 per alias, labelled with its version) and
    ``trading_model_registry_up`` (0 when the registry could not be read) for one model."""

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self._lock = threading.Lock()
        self._client = None

    def aliases(self) -> dict[str, str]:
        """Alias → version as the registry holds them now (empty for a model not registered)."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

        if self._client is None:
            self._client = MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            registered = self._client.get_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                return {}
            raise
        return {alias: str(version) for alias, version in (registered.aliases or {}).items()}

    def collect(self) -> Iterator[Metric]:
        """The series as the registry answers now."""
        info, up = _families()
        try:
            with self._lock:
                aliases = self.aliases()
        except Exception as error:
            log.warning("could not read model %s from the registry: %s", self.model_name, error)
            up.add_metric([self.model_name], 0.0)
        else:
            up.add_metric([self.model_name], 1.0)
            for alias, version in sorted(aliases.items()):
                info.add_metric([self.model_name, alias, version], 1.0)
        yield from (info, up)

    def describe(self) -> Iterator[Metric]:
        """The series' names, without asking the registry."""
        yield from _families()


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "trading_model_alias_info",
            "1 for the version each alias of the registered model points at in the registry",
            labels=["model", "alias", "version"],
        ),
        GaugeMetricFamily(
            "trading_model_registry_up",
            "1 when the exporter read the registered model at this scrape, 0 when it failed",
            labels=["model"],
        ),
    )
