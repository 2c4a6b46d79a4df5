"""Which asset's watermark each test asserts, and reading watermarks back from an instance.

Every asset of the code location records ``watermark`` (the newest market time it holds) or, with
no market data, ``watermark_note``. The end-to-end tests run their assets on one instance and
check every materialization it holds against the loaded definitions, so an asset that stops
recording its watermark fails there; ``test_every_asset_has_a_watermark_test`` fails when an
asset is added without a test here.
"""

from __future__ import annotations

from functools import cache

import dagster as dg

from trading_assets.definitions import defs as lazy_defs
from trading_assets.defs.watermark import WATERMARK, WATERMARK_NOTE

LAKEHOUSE_TEST = "test_lakehouse_assets"
FEATURES_TEST = "test_features_assets"
MODELS_TEST = "test_models_assets"
ROLLOUT_TEST = "test_rollout_sensor"
CROSS_TEST = "test_cross_features"
BOOK_TEST = "test_book_assets"
BACKTEST_TEST = "test_backtest_asset"

# The test module that asserts each asset's watermark on a materialization with market data.
WATERMARK_TESTS = {
    "raw_trades": LAKEHOUSE_TEST,
    "bronze_trades": LAKEHOUSE_TEST,
    "silver_trades": LAKEHOUSE_TEST,
    "bars_1s": LAKEHOUSE_TEST,
    "bars_1m": LAKEHOUSE_TEST,
    "features": FEATURES_TEST,
    "cross_features": CROSS_TEST,
    "bronze_book": BOOK_TEST,
    "silver_book": BOOK_TEST,
    "depth_features": BOOK_TEST,
    "feast_registry": FEATURES_TEST,
    "online_features": FEATURES_TEST,
    "training_set": FEATURES_TEST,
    "recent_training_rows": FEATURES_TEST,
    "full_model": MODELS_TEST,
    "incremental_model": MODELS_TEST,
    "onnx_model": MODELS_TEST,
    "registered_model": MODELS_TEST,
    "challenger_model": MODELS_TEST,
    "live_model_metrics": ROLLOUT_TEST,
    "served_model": ROLLOUT_TEST,
    "backtest": BACKTEST_TEST,
}
# Assets that hold no market data: they record a watermark_note, never a watermark.
NO_MARKET_DATA = frozenset({"feast_registry"})


@cache
def code_location_assets() -> frozenset[dg.AssetKey]:
    """Every asset key of the loaded definitions."""
    return frozenset(spec.key for spec in lazy_defs().resolve_all_asset_specs())


def assets_of(test_module: str) -> set[str]:
    """The assets whose watermark ``test_module`` asserts."""
    return {name for name, module in WATERMARK_TESTS.items() if module == test_module}


def watermark_states(instance: dg.DagsterInstance) -> dict[str, str]:
    """For each code-location asset ``instance`` holds a materialization of, what its newest one
    records: ``"watermark"``, ``"note"`` or ``"neither"``."""
    states: dict[str, str] = {}
    for key in code_location_assets():
        event = instance.get_latest_materialization_event(key)
        materialization = None if event is None else event.asset_materialization
        if materialization is None:
            continue
        metadata = materialization.metadata
        if WATERMARK in metadata:
            states[key.to_user_string()] = "watermark"
        elif WATERMARK_NOTE in metadata:
            states[key.to_user_string()] = "note"
        else:
            states[key.to_user_string()] = "neither"
    return states


def expected_states(assets: set[str]) -> dict[str, str]:
    """What :func:`watermark_states` must say when every asset had market data."""
    return {name: "note" if name in NO_MARKET_DATA else "watermark" for name in assets}
