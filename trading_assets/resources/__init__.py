"""Dagster resources, chosen by environment from one map (see trading_assets.lib.settings).

Only :data:`RESOURCES_BY_ENVIRONMENT` tells the environments apart. In production every secret
reaches a resource as ``dg.EnvVar``, so Dagster shows the variable's name, never its value, in
the UI and in run records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg

from trading_assets.lib.settings import Environment, Settings, load_settings
from trading_assets.resources.binance_bulk import BinanceBulkResource
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.mlflow import MlflowResource

__all__ = [
    "RESOURCES_BY_ENVIRONMENT",
    "BinanceBulkResource",
    "FeastResource",
    "IcebergCatalogResource",
    "MlflowResource",
    "build_resources",
]


def local_resources(settings: Settings) -> dict[str, Any]:
    """Embedded stores under the data folder: sqlite catalog and MLflow, Feast's sqlite store."""
    return {
        "iceberg": IcebergCatalogResource(
            uri=settings.iceberg_catalog_uri, warehouse=settings.iceberg_warehouse
        ),
        "binance_bulk": BinanceBulkResource(base_url=settings.bulk_base_url),
        "feast": FeastResource.local(settings.data_dir / "feast"),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_location=str(settings.data_dir / "mlflow" / "artifacts"),
            model_name=settings.mlflow_model_name,
            models_uri=settings.models_uri,
        ),
    }


def prod_resources(settings: Settings) -> dict[str, Any]:
    """Servers: the Iceberg catalog on PostgreSQL with an S3 warehouse, Feast on Redis with a SQL
    registry, the MLflow server; S3 credentials and every password from the environment."""
    s3 = settings.s3
    return {
        "iceberg": IcebergCatalogResource(
            uri=dg.EnvVar("ICEBERG_CATALOG_URI"),
            warehouse=settings.iceberg_warehouse,
            s3_endpoint=s3.endpoint_url,
            s3_region=s3.region,
            s3_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            s3_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        ),
        "binance_bulk": BinanceBulkResource(base_url=settings.bulk_base_url),
        "feast": FeastResource(
            environment="prod",
            data_root=str(settings.data_dir / "feast"),
            registry_path=dg.EnvVar("FEAST_REGISTRY_PATH"),
            redis_connection_string=dg.EnvVar("REDIS_CONNECTION_STRING"),
        ),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.mlflow_model_name,
            models_uri=settings.models_uri,
        ),
    }


RESOURCES_BY_ENVIRONMENT: dict[Environment, Callable[[Settings], dict[str, Any]]] = {
    "local": local_resources,
    "prod": prod_resources,
}


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or load_settings()
    return RESOURCES_BY_ENVIRONMENT[settings.environment](settings)
