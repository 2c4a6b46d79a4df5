"""The MLflow tracking/registry resource, and where models travel between assets as files.

Locally the tracking store is sqlite under ``<TRADING_DATA_DIR>/mlflow`` with artifacts beside
it; in production the tracking URI arrives from ``MLFLOW_TRACKING_URI`` (as ``dg.EnvVar``).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

DEFAULT_MODEL_NAME = "signal"


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry for the signal model, plus the local model folder."""

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI.")
    artifact_location: str | None = Field(
        default=None, description="Artifact root for a newly created experiment (None: MLflow's)."
    )
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Registered model name.")
    models_dir: str = Field(description="Folder where trained models pass between assets.")

    @classmethod
    def local(cls, mlflow_root: Path, models_dir: Path) -> MlflowResource:
        """Embedded store: ``mlflow.db`` and ``artifacts/`` under ``mlflow_root``."""
        root = mlflow_root.resolve()
        return cls(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=str(root / "artifacts"),
            models_dir=str(models_dir.resolve()),
        )

    def models_path(self) -> Path:
        path = Path(self.models_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ready_uri(self) -> str:
        """The tracking URI, with a local sqlite store's folder created first."""
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        return self.tracking_uri
