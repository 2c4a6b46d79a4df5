"""Feature services, versioned: a model records the service it was trained on, and a changed
feature set gets a new name instead of silently changing what an old model receives.

v2 leaves out the level features (``vwap_{w}s``: a price, display only), which v1 served as model
inputs; v1 stays, unchanged, for the versions registered on it. Models train on v2.
"""

from typing import Any

from feast import FeatureService, FeatureView
from feature_views import book, flow, price

from trading_assets.lib.feature_store.spec import view_features


def _projected(service: str, views: list[FeatureView]) -> list[Any]:
    """Each view, or its projection onto the features ``service`` serves from it."""
    projected: list[Any] = []
    for view in views:
        served = view_features(service, view.name)
        whole = served == [field.name for field in view.features]
        projected.append(view if whole else view[served])
    return projected


signal_v1 = FeatureService(
    name="signal_v1",
    features=[price, flow, book],
    description="Everything the sidecar serves: price, flow and book groups, level features "
    "included (kept for the versions registered on it).",
)

signal_trades_v1 = FeatureService(
    name="signal_trades_v1",
    features=[price, flow],
    description="Trades-only groups, level features included (kept for the versions "
    "registered on it).",
)

signal_v2 = FeatureService(
    name="signal_v2",
    features=_projected("signal_v2", [price, flow, book]),
    description="Model inputs of the price, flow and book groups: no level features.",
)

signal_trades_v2 = FeatureService(
    name="signal_trades_v2",
    features=_projected("signal_trades_v2", [price, flow]),
    description="Model inputs of the trades-only groups (no level features): what history "
    "supports for training, and the fallback when book data is stale.",
)
