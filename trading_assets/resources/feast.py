"""The Feast store resource: the environment's ``feature_store.yaml`` plus per-deployment paths.

Locally the registry, sqlite online store and offline export live under ``data_root``
(``<TRADING_DATA_DIR>/feast`` by default); in production the yaml reads the Redis connection
string and registry path from the environment, or they arrive here as ``dg.EnvVar``. Tests pass
a temporary ``data_root`` and, for Redis, the test server's connection string.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from trading_assets.lib.feature_store.paths import (
    FEATURE_REPO_DIR,
    GOLD_FEATURES_FOLDER,
    offline_root,
    resolve,
)
from trading_assets.lib.feature_store.repo import load_repo_config, open_store

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

TRAINING_FOLDER = "training_sets"


class FeastResource(dg.ConfigurableResource):
    """Opens the Feast feature store for one environment (local sqlite or Redis online store)."""

    environment: str = Field(
        default="local", description="Selects feature_store.yaml (local) or .prod.yaml (prod)."
    )
    data_root: str = Field(
        description="Feast's repo_path: relative registry/online/offline paths resolve here."
    )
    registry_path: str | None = Field(default=None, description="Overrides registry.path.")
    online_store_path: str | None = Field(
        default=None, description="Overrides the sqlite online store's path."
    )
    redis_connection_string: str | None = Field(
        default=None, description="Overrides Redis' host:port[,password=...] (pass dg.EnvVar)."
    )
    online_store_type: str | None = Field(
        default=None, description="Overrides online_store.type (e.g. redis in a local test)."
    )

    @classmethod
    def local(cls, root: Path) -> FeastResource:
        """Embedded store: registry, sqlite online store and offline export under ``root``."""
        return cls(environment="local", data_root=str(root.resolve()))

    def overrides(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.registry_path:
            values["registry.path"] = self.registry_path
        if self.online_store_type == "redis" or (
            self.redis_connection_string and self.environment == "local"
        ):
            # A Redis store in the local environment: replace the sqlite section entirely.
            values["online_store"] = {"type": "redis"}
        elif self.online_store_type:
            values["online_store"] = {"type": self.online_store_type}
        if self.online_store_path:
            values["online_store.path"] = self.online_store_path
        if self.redis_connection_string:
            values["online_store.connection_string"] = self.redis_connection_string
        return values

    def repo_config(self) -> RepoConfig:
        return load_repo_config(self.environment, self.data_root, self.overrides())

    def store(self) -> FeatureStore:
        return open_store(self.repo_config())

    @property
    def repo_dir(self) -> Path:
        return FEATURE_REPO_DIR

    def offline_features_dir(self) -> str:
        """Where the gold export lives (the gold source's path, resolved like Feast does)."""
        return resolve(self.data_root, f"{offline_root()}/{GOLD_FEATURES_FOLDER}")

    def training_dir(self) -> str:
        return resolve(self.data_root, f"{offline_root()}/{TRAINING_FOLDER}")
