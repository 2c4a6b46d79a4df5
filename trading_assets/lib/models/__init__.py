"""Return models without Dagster: purged walk-forward splits, metrics with baselines, training.

Names are imported on first use, so a process that only serves ONNX models
(``trading_assets.lib.models.inference``, the sidecar) never loads XGBoost, scikit-learn or SciPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        policy_pnl,
        position_pnl,
        rmse,
        trade_pnl,
    )
    from trading_assets.lib.models.policy import round_trip_cost, target_position, target_positions
    from trading_assets.lib.models.splits import Fold, purged_walk_forward
    from trading_assets.lib.models.training import TrainedModel, train_full, train_incremental

_HOMES = {
    "evaluation": ("DEFAULT_PARAMS", "FoldResult", "WalkForwardReport", "walk_forward"),
    "metrics": (
        "FEE_BP",
        "Comparison",
        "Metrics",
        "beats_baselines",
        "compare",
        "hit_rate",
        "information_coefficient",
        "policy_pnl",
        "position_pnl",
        "rmse",
        "trade_pnl",
    ),
    "policy": ("round_trip_cost", "target_position", "target_positions"),
    "splits": ("Fold", "purged_walk_forward"),
    "training": ("TrainedModel", "train_full", "train_incremental"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [  # the names of _HOMES, spelled out for static tools
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
    "policy_pnl",
    "position_pnl",
    "purged_walk_forward",
    "rmse",
    "round_trip_cost",
    "target_position",
    "target_positions",
    "trade_pnl",
    "train_full",
    "train_incremental",
    "walk_forward",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
