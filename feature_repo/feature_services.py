"""Feature services, versioned: a model records the service it was trained on, and a changed
feature set gets a new name instead of silently changing what an old model receives."""

from feast import FeatureService
from feature_views import book, flow, price

signal_v1 = FeatureService(
    name="signal_v1",
    features=[price, flow, book],
    description="Everything the sidecar serves: price, flow and book groups.",
)

signal_trades_v1 = FeatureService(
    name="signal_trades_v1",
    features=[price, flow],
    description="Trades-only groups: what history supports for training, and the fallback "
    "when book data is stale.",
)
