"""The depth group through Dagster and Feast into a model, with a planted book lean.

The simulator's synthetic day leans its book toward its planted drift (the best bid's size grows
in an up episode, the best ask's in a down one). Its trades go through the lakehouse to gold
features; its depth stream, as the simulator's live server publishes it, is recorded by the
sidecar's recorder and landed, then goes through bronze_book, silver_book and depth_features.
A model declaring ``signal_depth_v1`` trains on the captured day: its training frame says which
rows the captured book covers, its walk-forward IC is clearly positive and its top feature is a
depth feature. On the same market without the edge it finds nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from tests.book_landing import land_synthetic_day
from trading_assets.defs.book.assets import bronze_book, depth_features, silver_book
from trading_assets.defs.features.assets import feast_registry, features, training_set
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
from trading_assets.defs.models.training import full_model
from trading_assets.lib.feature_store import spec
from trading_assets.lib.features.depth import COVERED, depth_feature_names
from trading_assets.resources import (
    BinanceBulkResource,
    FeastResource,
    IcebergCatalogResource,
    MlflowResource,
)
from trading_assets.resources.landing import LandingResource

pytestmark = pytest.mark.backtest
DAY = dt.date(2024, 3, 1)
INSTRUMENT = "BINANCE:BTCUSDT"
SERVICE = "signal_depth_v1"
SEED = 29
TRADES_PER_DAY = 60_000


def materialized(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def train(tmp_path: Path, edge: float) -> dict:
    """The day's trades and captured book through every layer, then a model on the depth
    service; the training frame and the model's metadata."""
    landing = tmp_path / "landing"
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY, edge=edge)
    land_synthetic_day(landing, market, "BTCUSDT", DAY)
    with run_simulator_in_thread(symbols=["BTCUSDT"], seed=SEED, trades_per_day=TRADES_PER_DAY,
                                 live=False, edge=edge) as sim:  # fmt: skip
        resources = {
            "iceberg": IcebergCatalogResource.local(tmp_path / "iceberg"),
            "binance_bulk": BinanceBulkResource(base_url=sim.http_url),
            "feast": FeastResource.local(tmp_path / "feast"),
            "mlflow": MlflowResource.local(tmp_path / "mlflow", tmp_path / "models"),
            "landing": LandingResource(root=str(landing)),
        }
        day = [raw_trades, bronze_trades, silver_trades, bars_1s, features,
               bronze_book, silver_book, depth_features]  # fmt: skip
        assert dg.materialize(day, partition_key=f"{DAY}|{INSTRUMENT}", resources=resources).success
    trained = dg.materialize(
        [feast_registry, training_set, full_model],
        resources=resources,
        run_config={
            "ops": {
                "training_set": {"config": {"feature_service": SERVICE, "symbols": [INSTRUMENT]}},
                "full_model": {"config": {"feature_service": SERVICE, "n_trees": 40, "n_folds": 3}},
            }
        },
    )
    assert trained.success
    return {
        "frame": pl.read_parquet(str(materialized(trained, "training_set")["path"])),
        "model": materialized(trained, "full_model"),
    }


def top_feature(model: dict) -> str:
    """The first feature of the model's importance table (by gain)."""
    table = str(model["feature_importance"]).split("| feature | total gain | share |")[1]
    return table.split("\n")[2].split("|")[1].strip()


def test_a_model_on_the_depth_group_finds_the_planted_lean(tmp_path):
    planted = train(tmp_path / "planted", edge=1.0)
    control = train(tmp_path / "control", edge=0.0)

    # The training frame carries the depth group and says which rows the captured book covers
    frame = planted["frame"]
    assert set(spec.service_features(SERVICE)) <= set(frame.columns)
    assert set(depth_feature_names()) <= set(frame.columns)
    covered = frame[COVERED].fill_null(0.0)
    assert covered.mean() > 0.95, covered.value_counts()
    # Planted: found out of sample, through a depth feature; control: nothing significant
    found, nothing = planted["model"], control["model"]
    assert found["model_ic"] > 0.05 and found["model_ic_p_value"] <= 0.01, found["metrics"]
    assert top_feature(found) in depth_feature_names(), found["feature_importance"]
    assert nothing["model_ic_p_value"] > 0.05, nothing["metrics"]
