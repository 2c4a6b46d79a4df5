"""The Feast store resource: the environment's ``feature_store.yaml`` plus per-deployment values.

Locally the registry, sqlite online store and offline export live under ``data_root``
(``<TRADING_DATA_DIR>/feast`` by default). In production the registry path (PostgreSQL, for
Feast's SQL registry) and the Redis connection string arrive as ``dg.EnvVar``, so Dagster shows
their names, never their values; the offline exports live under ``FEAST_OFFLINE_ROOT`` on S3.
What the values are decides the stores, not the environment's name: a Redis connection string
means the Redis online store, a PostgreSQL registry path the SQL registry (see
:func:`~trading_assets.lib.feature_store.repo.store_overrides`). Tests pass a temporary
``data_root`` and the test servers' addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from trading_assets.lib.feature_store.paths import (
    CROSS_FEATURES_FOLDER,
    DEPTH_FEATURES_FOLDER,
    FEATURE_REPO_DIR,
    GOLD_FEATURES_FOLDER,
    offline_root,
    resolve,
)
from trading_assets.lib.feature_store.repo import load_repo_config, open_store, store_overrides

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

TRAINING_FOLDER = "training_sets"


class FeastResource(dg.ConfigurableResource):
    """Opens the Feast feature store of one deployment (sqlite or Redis online store, file or SQL
    registry, offline exports on disk or S3)."""

    environment: str = Field(
        default="local", description="Selects feature_store.yaml (local) or .prod.yaml (prod)."
    )
    data_root: str = Field(
        description="Feast's repo_path: relative registry/online/offline paths resolve here."
    )
    registry_path: str | None = Field(
        default=None,
        description="Overrides registry.path: a file, or PostgreSQL for the SQL registry "
        "(pass dg.EnvVar).",
    )
    online_store_path: str | None = Field(
        default=None, description="Overrides the sqlite online store's path."
    )
    redis_connection_string: str | None = Field(
        default=None,
        description="Given: the Redis online store at host:port[,password=...], whatever the "
        "yaml holds (pass dg.EnvVar).",
    )
    online_store_type: str | None = Field(
        default=None, description="Overrides online_store.type (e.g. redis in a local test)."
    )

    @classmethod
    def local(cls, root: Path) -> FeastResource:
        """Embedded store: registry, sqlite online store and offline export under ``root``."""
        return cls(environment="local", data_root=str(root.resolve()))

    def overrides(self) -> dict[str, Any]:
        """The yaml's values this deployment replaces, decided from the values given."""
        return store_overrides(
            registry_path=self.registry_path,
            redis_connection_string=self.redis_connection_string,
            online_store_type=self.online_store_type,
            online_store_path=self.online_store_path,
        )

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

    def cross_features_dir(self) -> str:
        """Where the ``cross_features`` asset exports gold.cross_features for Feast."""
        return resolve(self.data_root, f"{offline_root()}/{CROSS_FEATURES_FOLDER}")

    def depth_features_dir(self) -> str:
        """Where the ``depth_features`` asset exports gold.depth_features for Feast."""
        return resolve(self.data_root, f"{offline_root()}/{DEPTH_FEATURES_FOLDER}")

    def training_dir(self) -> str:
        return resolve(self.data_root, f"{offline_root()}/{TRAINING_FOLDER}")
