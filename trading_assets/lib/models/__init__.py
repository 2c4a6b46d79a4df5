"""Return models without Dagster: purged walk-forward splits, metrics with baselines, training."""

from trading_assets.lib.models.evaluation import (
    DEFAULT_PARAMS,
    FoldResult,
    WalkForwardReport,
    walk_forward,
)
from trading_assets.lib.models.metrics import (
    FEE_BP,
    Comparison,
    Metrics,
    beats_baselines,
    compare,
    hit_rate,
    information_coefficient,
    rmse,
    sign_strategy_pnl,
)
from trading_assets.lib.models.splits import Fold, purged_walk_forward
from trading_assets.lib.models.training import TrainedModel, train_full, train_incremental

__all__ = [
    "DEFAULT_PARAMS",
    "FEE_BP",
    "Comparison",
    "Fold",
    "FoldResult",
    "Metrics",
    "TrainedModel",
    "WalkForwardReport",
    "beats_baselines",
    "compare",
    "hit_rate",
    "information_coefficient",
    "purged_walk_forward",
    "rmse",
    "sign_strategy_pnl",
    "train_full",
    "train_incremental",
    "walk_forward",
]
