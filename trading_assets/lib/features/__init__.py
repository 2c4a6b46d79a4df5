"""Features defined once, computed in batch (polars, from bars) and live (incrementally, per bar).

Groups: ``price`` and ``flow`` need only trades (flow needs the taker buy/sell split and trade
counts, so klines without them get the price group only); ``book`` needs bookTicker data;
``cross`` pairs an instrument with a reference instrument at another venue or market
(``cross_venue``).
Level features (``vwap``) are computed and served for display; models read ``model_feature_names``.
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
    CROSS,
    DEFAULT_CONFIG,
    DEPTH,
    FLOW,
    KNOWN_GROUPS,
    LEVEL_KINDS,
    PRICE,
    TRADE_GROUPS,
    FeatureConfig,
    check_model_features,
    feature_names,
    is_level_feature,
    label_names,
    level_feature_names,
    model_feature_names,
)
from trading_assets.lib.features.frames import book_frame, trades_frame
from trading_assets.lib.features.incremental import Bar, FeatureRow, IncrementalFeatures, Quote
from trading_assets.lib.features.klines import (
    bars_from_klines,
    kline_groups,
    kline_model_features,
)
from trading_assets.lib.features.leakage import LookaheadReport, check_lookahead
from trading_assets.lib.features.live import BarBuilder, LiveFeatures

__all__ = [
    "ALL_GROUPS",
    "BOOK",
    "BOOK_COLUMNS",
    "CROSS",
    "DEFAULT_CONFIG",
    "DEPTH",
    "FLOW",
    "KNOWN_GROUPS",
    "LEVEL_KINDS",
    "PRICE",
    "TRADE_GROUPS",
    "Bar",
    "BarBuilder",
    "FeatureConfig",
    "FeatureRow",
    "IncrementalFeatures",
    "LiveFeatures",
    "LookaheadReport",
    "Quote",
    "bars_from_klines",
    "book_frame",
    "check_lookahead",
    "check_model_features",
    "compute_features",
    "compute_labels",
    "feature_names",
    "infer_bar_seconds",
    "is_level_feature",
    "kline_groups",
    "kline_model_features",
    "label_names",
    "level_feature_names",
    "model_feature_names",
    "trades_frame",
]
