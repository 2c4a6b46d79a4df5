"""Dagster resources, selected by TRADING_ENV (see trading_assets.lib.settings)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from trading_assets.lib.settings import bulk_base_url, data_dir, trading_env
from trading_assets.resources.binance_bulk import BinanceBulkResource
from trading_assets.resources.iceberg import IcebergCatalogResource

__all__ = ["BinanceBulkResource", "IcebergCatalogResource", "build_resources"]


def build_resources() -> dict[str, Any]:
    bulk = BinanceBulkResource(base_url=bulk_base_url())
    if trading_env() == "prod":
        # Postgres (or REST) catalog and an s3:// warehouse; S3 credentials come from the
        # standard AWS variables unless set here explicitly.
        catalog = IcebergCatalogResource(
            uri=dg.EnvVar("ICEBERG_CATALOG_URI"),
            warehouse=dg.EnvVar("ICEBERG_WAREHOUSE"),
        )
    else:
        catalog = IcebergCatalogResource.local(data_dir() / "iceberg")
    return {"iceberg": catalog, "binance_bulk": bulk}
