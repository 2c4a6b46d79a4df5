"""The Iceberg catalog resource: sqlite + local folder locally, Postgres (or REST) + S3 in prod.

Switching environments is configuration only: ``catalog_type``, ``uri``, ``warehouse`` and the
FileIO properties. Secrets (a password inside the URI, S3 keys) arrive as ``dg.EnvVar``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field

from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.lib.lakehouse.tables import open_catalog
from trading_assets.lib.settings import local_catalog


class IcebergCatalogResource(dg.ConfigurableResource):
    """A pyiceberg catalog plus the raw area (``<warehouse>/raw``) for original bulk files."""

    name: str = Field(default="trading", description="Catalog name (the namespace prefix).")
    catalog_type: str = Field(default="sql", description="pyiceberg catalog type: sql, rest, glue.")
    uri: str = Field(
        description="sqlite:///path.db locally; postgresql+psycopg2://user:pw@host/db in prod."
    )
    warehouse: str = Field(description="file:///abs/path locally; s3://bucket/prefix in prod.")
    s3_endpoint: str | None = Field(default=None, description="S3-compatible endpoint URL.")
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(default=None, description="Pass as dg.EnvVar.")
    s3_secret_access_key: str | None = Field(default=None, description="Pass as dg.EnvVar.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra pyiceberg catalog/FileIO properties."
    )

    @classmethod
    def local(cls, root: Path) -> IcebergCatalogResource:
        """Embedded catalog: sqlite file and warehouse folder under ``root``."""
        uri, warehouse = local_catalog(root)
        return cls(uri=uri, warehouse=warehouse)

    def catalog_properties(self) -> dict[str, str]:
        props = {"type": self.catalog_type, "uri": self.uri, "warehouse": self.warehouse}
        optional = {
            "s3.endpoint": self.s3_endpoint,
            "s3.region": self.s3_region,
            "s3.access-key-id": self.s3_access_key_id,
            "s3.secret-access-key": self.s3_secret_access_key,
        }
        props.update({key: value for key, value in optional.items() if value})
        props.update(self.properties)
        return props

    @property
    def raw_root(self) -> str:
        return f"{self.warehouse.rstrip('/')}/raw"

    def _ensure_local_folders(self) -> None:
        if self.uri.startswith("sqlite:///"):
            db_path = Path(urlparse(self.uri.replace("sqlite:///", "file:///", 1)).path)
            db_path.parent.mkdir(parents=True, exist_ok=True)
        if self.warehouse.startswith("file://"):
            Path(urlparse(self.warehouse).path).mkdir(parents=True, exist_ok=True)

    def lakehouse(self) -> Lakehouse:
        self._ensure_local_folders()
        return Lakehouse(open_catalog(self.name, self.catalog_properties()), self.raw_root)
