"""What the Feast repository serves, defined once: feature groups → views → services.

Feature names come from ``trading_assets.lib.features`` (the same code the batch asset and the
live sidecar run), so a feature added there appears in gold, in Feast and online together.
Level features (display only) are in the views, so they are stored and pushed online, but only
the v1 services, kept for the versions registered on them, serve them.
"""

from __future__ import annotations

import datetime as dt

from trading_assets.lib.features import (
    ALL_GROUPS,
    CROSS,
    DEPTH,
    TRADE_GROUPS,
    FeatureConfig,
    feature_names,
    level_feature_names,
    model_feature_names,
)

FEATURE_CONFIG = FeatureConfig()
"""The configuration gold features are computed with and Feast serves."""

ENTITY = "instrument"
TIMESTAMP_FIELD = "event_timestamp"

SERVICES: dict[str, tuple[str, ...]] = {
    "signal_v1": ALL_GROUPS,
    "signal_trades_v1": TRADE_GROUPS,
    "signal_v2": ALL_GROUPS,
    "signal_trades_v2": TRADE_GROUPS,
    "signal_cross_v1": (*TRADE_GROUPS, CROSS),
    "signal_depth_v1": (*TRADE_GROUPS, DEPTH),
}
"""Feature services and the groups (feature views) each reads. Versioned: a changed set gets a new
name, old models keep theirs. The Feast repository builds its services from this."""

SERVICE_DESCRIPTIONS: dict[str, str] = {
    "signal_v1": "Everything the sidecar serves: price, flow and book groups, level features "
    "included (kept for the versions registered on it).",
    "signal_trades_v1": "Trades-only groups, level features included (kept for the versions "
    "registered on it).",
    "signal_v2": "Model inputs of the price, flow and book groups: no level features.",
    "signal_trades_v2": "Model inputs of the trades-only groups (no level features): what "
    "history supports for training, and the fallback when book data is stale.",
    "signal_cross_v1": "Model inputs of the trades-only groups and the cross group: the "
    "instrument against its reference at another venue (TRADING_CROSS_PAIRS).",
    "signal_depth_v1": "Model inputs of the trades-only groups and the depth group, from the "
    "captured L2 book: trains on the days the sidecar captured (depth_covered says which rows).",
}
"""Each service's description in the Feast registry."""

LEVEL_SERVICES = frozenset({"signal_v1", "signal_trades_v1"})
"""Services that also serve the display-only level features (``vwap_{w}s``). Kept unchanged for the
versions registered on them, whose inputs include those features; no new model trains on them.
The v2 services serve every other feature of the same groups."""

TRAINING_SERVICE = "signal_trades_v2"
"""History has no book data, so training frames default to the trades-only service."""


def service_features(service: str, config: FeatureConfig = FEATURE_CONFIG) -> list[str]:
    """The features a service serves, in ``feature_names`` order."""
    if service not in SERVICES:
        raise ValueError(f"unknown feature service {service!r}; known: {sorted(SERVICES)}")
    groups = SERVICES[service]
    if service in LEVEL_SERVICES:
        return feature_names(config, groups)
    return model_feature_names(config, groups)


def training_features(service: str, config: FeatureConfig = FEATURE_CONFIG) -> list[str]:
    """A service's features as model inputs; a service serving level features is refused."""
    if service in LEVEL_SERVICES:
        trainable = sorted(name for name in SERVICES if name not in LEVEL_SERVICES)
        raise ValueError(
            f"feature service {service!r} serves the display-only level features "
            f"{level_feature_names(config, SERVICES[service])}, which are never model inputs; "
            f"it is kept only for versions already registered on it. Train on one of {trainable}"
        )
    return service_features(service, config)


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


def view_features(service: str, group: str, config: FeatureConfig = FEATURE_CONFIG) -> list[str]:
    """The features of the ``group`` view that ``service`` projects (its whole view or a part)."""
    served = set(service_features(service, config))
    return [name for name in group_features(group, config) if name in served]
