"""The MLflow tracking/registry resource, and where models travel between assets as files.

Locally the tracking store is sqlite under ``<TRADING_DATA_DIR>/mlflow`` with artifacts beside
it; in production ``MLFLOW_TRACKING_URI`` names the MLflow server, which keeps the artifacts
itself (``mlflow-artifacts:``, proxied to S3), so its clients hold no S3 credentials for them.
Models pass between assets at ``models_uri`` (``TRADING_MODELS_URI``): a folder locally, an
``s3://bucket/prefix`` in production, where run workers share no disk.

A request to an MLflow server is bounded (``MLFLOW_HTTP_REQUEST_*``, see
:func:`client_limits`): with MLflow's own defaults a step or a sensor tick that asks a server
that is down waits about four minutes before it fails; with these it fails within seconds, and
the step's retry (:mod:`trading_assets.defs.store_retries`) or the sensor's next tick asks again.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from trading_assets.lib import storage
from trading_assets.lib.models.registry import is_tracking_server
from trading_assets.lib.settings import BY_NAME, MLFLOW_REQUEST_BOUNDS, Settings, SettingsError

DEFAULT_MODEL_NAME = "signal"
# MLflow's own variables: its client reads them from the environment at each request.
MAX_RETRIES, BACKOFF_FACTOR, TIMEOUT = MLFLOW_REQUEST_BOUNDS


def _default(variable: str) -> float:
    return float(BY_NAME[variable].prod or 0)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry for the signal model, plus where models pass between
    assets."""

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI.")
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for an experiment created in a local store (None: MLflow's). "
        "A tracking server keeps its own root and proxies the artifacts.",
    )
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Registered model name.")
    models_uri: str = Field(
        description="Where trained models pass between assets: a folder (or file:// URI) "
        "locally, s3://bucket/prefix in production."
    )
    http_request_max_retries: int = Field(
        default=int(_default(MAX_RETRIES)), ge=0, description="Retries of a server request."
    )
    http_request_backoff_factor: float = Field(
        default=_default(BACKOFF_FACTOR), ge=0, description="Backoff of those retries (s)."
    )
    http_request_timeout_s: float = Field(
        default=_default(TIMEOUT), gt=0, description="Seconds one server request may take."
    )

    @classmethod
    def local(cls, mlflow_root: Path, models: Path | str) -> MlflowResource:
        """Embedded store: ``mlflow.db`` and ``artifacts/`` under ``mlflow_root``; models at
        ``models`` (a folder, or any location :mod:`trading_assets.lib.storage` reaches)."""
        root = mlflow_root.resolve()
        location = str(models) if "://" in str(models) else str(Path(models).resolve())
        return cls(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=str(root / "artifacts"),
            models_uri=location,
        )

    def model_location(self, name: str) -> str:
        """The location of the model file ``name`` (a path or URI, as ``models_uri`` is)."""
        return storage.join(self.models_uri, name)

    def ready_uri(self) -> str:
        """The tracking URI, ready for a client: a local sqlite store's folder created first; for
        a server, this process's MLflow requests bounded (:meth:`client_environment`)."""
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        if is_tracking_server(self.tracking_uri):
            # MLflow takes these bounds from the environment only, at each request.
            os.environ.update(self.client_environment())
        return self.tracking_uri

    def client_environment(self) -> dict[str, str]:
        """The variables MLflow's client reads to bound its requests to a server."""
        return {
            MAX_RETRIES: str(self.http_request_max_retries),
            BACKOFF_FACTOR: f"{self.http_request_backoff_factor:g}",
            TIMEOUT: f"{self.http_request_timeout_s:g}",
        }


def client_limits(settings: Settings) -> dict[str, Any]:
    """The MLflow resource's request bounds from ``settings`` (``MLFLOW_HTTP_REQUEST_*``); a
    malformed value raises :class:`SettingsError` naming its variable."""
    return {
        "http_request_max_retries": int(_number(settings, MAX_RETRIES, whole=True)),
        "http_request_backoff_factor": _number(settings, BACKOFF_FACTOR),
        "http_request_timeout_s": _number(settings, TIMEOUT, positive=True),
    }


def _number(
    settings: Settings, variable: str, *, whole: bool = False, positive: bool = False
) -> float:
    raw = (settings.tuning(variable) or "").strip()
    try:
        value = float(int(raw) if whole else float(raw))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        expected = "a whole number" if whole else "a number of seconds"
        bound = "> 0" if positive else "≥ 0"
        raise SettingsError(f"{variable}: expected {expected} {bound}, got {raw!r}")
    return value
