"""What the Feast repository serves, defined once: feature groups → views → services.

Feature names come from ``trading_assets.lib.features`` (the same code the batch asset and the
live sidecar run), so a feature added there appears in gold, in Feast and online together.
"""

from __future__ import annotations

import datetime as dt

from trading_assets.lib.features import ALL_GROUPS, TRADE_GROUPS, FeatureConfig, feature_names

FEATURE_CONFIG = FeatureConfig()
"""The configuration gold features are computed with and Feast serves."""

ENTITY = "symbol"
TIMESTAMP_FIELD = "event_timestamp"

SERVICES: dict[str, tuple[str, ...]] = {
    "signal_v1": ALL_GROUPS,
    "signal_trades_v1": TRADE_GROUPS,
}
"""Feature services (versioned: a changed set gets a new name, old models keep theirs)."""

TRAINING_SERVICE = "signal_trades_v1"
"""History has no book data, so training frames default to the trades-only service."""


def group_features(group: str, config: FeatureConfig = FEATURE_CONFIG) -> list[str]:
    """Feature names of one group (one feature view per group, named like the group)."""
    return feature_names(config, (group,))


STALE_AFTER_S = 120
"""Features are emitted for every bar interval, empty ones included, so a newest row more than two
minutes old (two 1 m bars) means the feed stopped: serve nulls rather than a stale market. The
TTL also bounds the point-in-time join, whose candidate rows grow with it."""


def view_ttl() -> dt.timedelta:
    """How old a feature row may be and still be joined or served (``STALE_AFTER_S``)."""
    return dt.timedelta(seconds=STALE_AFTER_S)


def services_for(groups: tuple[str, ...]) -> list[str]:
    """Services whose groups cover ``groups`` (what a model declaring those groups may use)."""
    return [name for name, served in SERVICES.items() if set(groups) <= set(served)]
