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
from trading_assets.lib.features.frames import book_frame, trades_frame
from trading_assets.lib.features.incremental import Bar, FeatureRow, IncrementalFeatures, Quote
from trading_assets.lib.features.klines import bars_from_klines
from trading_assets.lib.features.leakage import LookaheadReport, check_lookahead
from trading_assets.lib.features.live import BarBuilder, LiveFeatures

__all__ = [
    "ALL_GROUPS",
    "BOOK",
    "BOOK_COLUMNS",
    "DEFAULT_CONFIG",
    "FLOW",
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
    "compute_features",
    "compute_labels",
    "feature_names",
    "infer_bar_seconds",
    "label_names",
    "trades_frame",
]
