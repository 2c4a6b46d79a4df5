"""Dagster resources, selected by TRADING_ENV (see trading_assets.lib.settings)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from trading_assets.lib.settings import bulk_base_url, data_dir, trading_env
from trading_assets.resources.binance_bulk import BinanceBulkResource
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.mlflow import MlflowResource

__all__ = [
    "BinanceBulkResource",
    "FeastResource",
    "IcebergCatalogResource",
    "MlflowResource",
    "build_resources",
]


def build_resources() -> dict[str, Any]:
    bulk = BinanceBulkResource(base_url=bulk_base_url())
    if trading_env() == "prod":
        # Postgres (or REST) catalog and an s3:// warehouse; S3 credentials come from the
        # standard AWS variables unless set here explicitly.
        catalog = IcebergCatalogResource(
            uri=dg.EnvVar("ICEBERG_CATALOG_URI"),
            warehouse=dg.EnvVar("ICEBERG_WAREHOUSE"),
        )
        # Feast's yaml reads REDIS_CONNECTION_STRING and FEAST_REGISTRY_PATH itself.
        feast = FeastResource(environment="prod", data_root=str(data_dir() / "feast"))
        mlflow = MlflowResource(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"), models_dir=str(data_dir() / "models")
        )
    else:
        catalog = IcebergCatalogResource.local(data_dir() / "iceberg")
        feast = FeastResource.local(data_dir() / "feast")
        mlflow = MlflowResource.local(data_dir() / "mlflow", data_dir() / "models")
    return {"iceberg": catalog, "binance_bulk": bulk, "feast": feast, "mlflow": mlflow}
