"""Feature services, versioned: a model records the service it was trained on, and a changed
feature set gets a new name instead of silently changing what an old model receives.

v2 leaves out the level features (``vwap_{w}s``: a price, display only), which v1 served as model
inputs; v1 stays, unchanged, for the versions registered on it. Models train on v2.

Each service is built from ``trading_assets.lib.feature_store.spec`` (``SERVICES``: its groups,
and which features of each it serves), so the registry and every reader of the spec agree.
"""

from typing import Any

from feast import FeatureService, FeatureView
from feature_views import book, cross, depth, flow, price

from trading_assets.lib.feature_store.spec import SERVICE_DESCRIPTIONS, SERVICES, view_features

VIEWS = {
    view.name: view for view in (price, flow, book, depth, cross)
}  # one view per group, named like it


def _projected(service: str, views: list[FeatureView]) -> list[Any]:
    """Each view, or its projection onto the features ``service`` serves from it."""
    projected: list[Any] = []
    for view in views:
        served = view_features(service, view.name)
        whole = served == [field.name for field in view.features]
        projected.append(view if whole else view[served])
    return projected


def build_service(name: str) -> FeatureService:
    """The feature service ``name`` of the spec: its groups' views, each whole or projected."""
    return FeatureService(
        name=name,
        features=_projected(name, [VIEWS[group] for group in SERVICES[name]]),
        description=SERVICE_DESCRIPTIONS[name],
    )


# Feast collects what it applies from the module's globals, so each service is bound to its own
# name (signal_v1, signal_trades_v1, ...), as if written out one by one.
globals().update({name: build_service(name) for name in SERVICES})
