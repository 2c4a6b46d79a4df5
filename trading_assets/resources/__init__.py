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
from trading_assets.resources.mlflow import MlflowResource, client_limits

__all__ = [
    "RESOURCES_BY_ENVIRONMENT",
    "BinanceBulkResource",
    "FeastResource",
    "IcebergCatalogResource",
    "MlflowResource",
    "build_resources",
]


def local_resources(settings: Settings) -> dict[str, Any]:
    """Embedded stores under the data folder: sqlite catalog and MLflow, Feast's sqlite store.

    A store the environment points elsewhere is honoured as in production: an ``s3://``
    warehouse gets the settings' S3 endpoint and keys, and an MLflow server keeps its own
    (proxied) artifact root, the local artifacts folder applying to a local store only (see
    :func:`trading_assets.lib.models.registry.experiment_artifact_location`).
    """
    return {
        "iceberg": IcebergCatalogResource(
            uri=settings.iceberg_catalog_uri,
            warehouse=settings.iceberg_warehouse,
            **_iceberg_s3(settings),
        ),
        "binance_bulk": BinanceBulkResource(base_url=settings.bulk_base_url),
        "feast": FeastResource.local(settings.data_dir / "feast"),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_location=str(settings.data_dir / "mlflow" / "artifacts"),
            model_name=settings.mlflow_model_name,
            models_uri=settings.models_uri,
            **client_limits(settings),
        ),
    }


def _iceberg_s3(settings: Settings) -> dict[str, Any]:
    """The catalog resource's S3 fields for an ``s3://`` warehouse (none for a folder): the
    settings' endpoint and region, and the keys as ``dg.EnvVar``, so Dagster shows their
    names only. The raw bulk files under ``<warehouse>/raw`` travel with the same FileIO."""
    if not settings.iceberg_warehouse.startswith("s3://"):
        return {}
    s3 = settings.s3
    keys = s3.access_key_id and s3.secret_access_key
    return {
        "s3_endpoint": s3.endpoint_url,
        "s3_region": s3.region,
        "s3_access_key_id": dg.EnvVar("AWS_ACCESS_KEY_ID") if keys else None,
        "s3_secret_access_key": dg.EnvVar("AWS_SECRET_ACCESS_KEY") if keys else None,
    }


def prod_resources(settings: Settings) -> dict[str, Any]:
    """Servers: the Iceberg catalog on PostgreSQL with an S3 warehouse, Feast on Redis with a SQL
    registry, the MLflow server; S3 credentials and every password from the environment."""
    return {
        "iceberg": IcebergCatalogResource(
            uri=dg.EnvVar("ICEBERG_CATALOG_URI"),
            warehouse=settings.iceberg_warehouse,
            **_iceberg_s3(settings),
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
            **client_limits(settings),
        ),
    }


RESOURCES_BY_ENVIRONMENT: dict[Environment, Callable[[Settings], dict[str, Any]]] = {
    "local": local_resources,
    "prod": prod_resources,
}


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or load_settings()
    return RESOURCES_BY_ENVIRONMENT[settings.environment](settings)
