"""The sidecar's Feast store: the one the Dagster assets materialize into, as its settings
describe it (the embedded sqlite store under the data folder locally; in production the SQL
registry on PostgreSQL and the Redis online store, shared with Dagster across machines)."""

from __future__ import annotations

import logging
from typing import Any

from streaming.config import SidecarConfig

log = logging.getLogger(__name__)


def open_feature_store(config: SidecarConfig) -> Any:
    """The Feast store the Dagster assets materialize into, read and pushed to by the sidecar.

    On a fresh install the sidecar may start before Dagster's ``feast_registry`` asset ran; it
    then applies the same repository definitions itself (apply is idempotent)."""
    from feast.errors import FeatureServiceNotFoundException

    from trading_assets.lib.feature_store.online_only import ONLINE_ONLY
    from trading_assets.lib.feature_store.repo import (
        apply_definitions,
        load_definitions,
        load_repo_config,
        open_store,
        store_overrides,
    )

    # The sidecar never reads the offline store; the repository's DuckDB one would cost RSS.
    overrides: dict[str, Any] = {"offline_store": {"type": ONLINE_ONLY}}
    overrides |= store_overrides(
        registry_path=config.feast_registry_path,
        redis_connection_string=config.redis_connection_string,
    )
    store = open_store(load_repo_config(config.environment, config.feast_root, overrides))
    try:
        store.get_feature_service(config.feature_service)
    except FeatureServiceNotFoundException:
        # Only a registry without the service: an unreachable one fails the start as it is.
        log.info("Feast registry has no %s yet: applying feature_repo/", config.feature_service)
        apply_definitions(store, load_definitions())
    return store
