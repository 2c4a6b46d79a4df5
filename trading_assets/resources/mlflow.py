"""The MLflow tracking/registry resource, and where models travel between assets as files.

Locally the tracking store is sqlite under ``<TRADING_DATA_DIR>/mlflow`` with artifacts beside
it; in production ``MLFLOW_TRACKING_URI`` names the MLflow server, which keeps the artifacts
itself (``mlflow-artifacts:``, proxied to S3), so its clients hold no S3 credentials for them.
Models pass between assets at ``models_uri`` (``TRADING_MODELS_URI``): a folder locally, an
``s3://bucket/prefix`` in production, where run workers share no disk.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from trading_assets.lib import storage

DEFAULT_MODEL_NAME = "signal"


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
        """The tracking URI, with a local sqlite store's folder created first."""
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        return self.tracking_uri
