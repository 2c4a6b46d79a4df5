"""A Feast offline store type for processes that use only the online store (the sidecar).

Validating a ``RepoConfig`` imports its offline store's module, and the repository's DuckDB one
brings DuckDB, Ibis and sqlglot (about 30 MB of resident memory) into a process that never
retrieves historical features. Configured with :data:`ONLINE_ONLY` instead, the store loads
nothing more, and any offline call fails loudly (Feast's base class raises
``NotImplementedError``) rather than quietly reading some other store.
"""

from __future__ import annotations

from feast.infra.offline_stores.offline_store import OfflineStore
from feast.repo_config import FeastConfigBaseModel
from pydantic import StrictStr

ONLINE_ONLY = f"{__name__}.OnlineOnlyOfflineStore"


class OnlineOnlyOfflineStoreConfig(FeastConfigBaseModel):
    """Feast finds a store's config class by appending ``Config`` to its type."""

    type: StrictStr = ONLINE_ONLY


class OnlineOnlyOfflineStore(OfflineStore):
    """No historical retrieval, no offline writes: pushes go ``PushMode.ONLINE`` only."""
