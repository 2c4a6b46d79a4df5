"""Features defined once, computed in batch (polars, from bars) and live (incrementally, per bar).

Groups: ``price`` and ``flow`` need only trades (flow needs the taker buy/sell split and trade
counts, so klines without them get the price group only); ``book`` needs bookTicker data.
The exact definitions, the empty-bar rule and the warm-up rule are in ``definitions``.
"""

from trading_assets.lib.features.batch import (
    BOOK_COLUMNS,
    compute_features,
    compute_labels,
    infer_bar_seconds,
)
from trading_assets.lib.features.definitions import (
    ALL_GROUPS,
    BOOK,
    DEFAULT_CONFIG,
    FLOW,
    PRICE,
    TRADE_GROUPS,
    FeatureConfig,
    feature_names,
    label_names,
)
from trading_assets.lib.features.klines import bars_from_klines

GROUPS = ALL_GROUPS

__all__ = [
    "ALL_GROUPS",
    "BOOK",
    "BOOK_COLUMNS",
    "DEFAULT_CONFIG",
    "FLOW",
    "GROUPS",
    "PRICE",
    "TRADE_GROUPS",
    "FeatureConfig",
    "bars_from_klines",
    "compute_features",
    "compute_labels",
    "feature_names",
    "infer_bar_seconds",
    "label_names",
]
