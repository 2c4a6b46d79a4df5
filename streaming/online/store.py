"""The sidecar's Feast store: the repository the Dagster assets materialize into."""

from __future__ import annotations

import logging
from typing import Any

from streaming.config import SidecarConfig

log = logging.getLogger(__name__)


def open_feature_store(config: SidecarConfig) -> Any:
    """The Feast store the Dagster assets materialize into (sqlite locally, or Redis).

    On a fresh install the sidecar may start before Dagster's ``feast_registry`` asset ran; it
    then applies the same repository definitions itself (apply is idempotent)."""
    from trading_assets.lib.feature_store.online_only import ONLINE_ONLY
    from trading_assets.lib.feature_store.repo import (
        apply_definitions,
        load_definitions,
        load_repo_config,
        open_store,
    )

    # The sidecar never reads the offline store; the repository's DuckDB one would cost RSS.
    overrides: dict[str, Any] = {"offline_store": {"type": ONLINE_ONLY}}
    if config.redis_connection_string:
        overrides |= {
            "online_store": {"type": "redis"},
            "online_store.connection_string": config.redis_connection_string,
        }
    store = open_store(load_repo_config("local", config.feast_root, overrides))
    try:
        store.get_feature_service(config.feature_service)
    except Exception:
        log.info("Feast registry has no %s yet: applying feature_repo/", config.feature_service)
        apply_definitions(store, load_definitions())
    return store
