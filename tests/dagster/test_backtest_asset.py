"""The backtest asset: a registered version replayed on the day that followed its training data.

Day 1's trades go through the lakehouse to gold features, and a model is trained on them and
registered (its version becomes a partition of the backtest). Day 2 follows: its trades through
the lakehouse, its depth stream recorded and landed as the sidecar lands it, through bronze and
silver. The training frame is rebuilt over both days, and the backtest of the version replays
day 2 only: the rows after its training data, scored by its ONNX model, filled on the captured
book, with the gate's baselines, the plots, and the fills and equity written per day.
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
from trading_assets.defs.book.assets import bronze_book, silver_book
from trading_assets.defs.features.assets import feast_registry, features, training_set
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
from trading_assets.defs.models.backtest import backtest
from trading_assets.defs.models.registry import onnx_model, registered_model
from trading_assets.defs.models.training import full_model, incremental_model, recent_training_rows
from trading_assets.lib.asset_names import MODEL_VERSIONS
from trading_assets.lib.backtest.fills import BOOK
from trading_assets.resources import (
    BinanceBulkResource,
    FeastResource,
    IcebergCatalogResource,
    MlflowResource,
)
from trading_assets.resources.landing import LandingResource

from .watermarks import BACKTEST_TEST, assets_of, expected_states, watermark_states

pytestmark = pytest.mark.backtest
DAY_1, DAY_2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
INSTRUMENT = "BINANCE:BTCUSDT"
SEED = 29
TRADES_PER_DAY = 60_000
DAY_ASSETS = [raw_trades, bronze_trades, silver_trades, bars_1s, features]


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def test_a_version_is_replayed_on_the_day_after_its_training_data(tmp_path):
    # Arrange: a model trained and registered on day 1; day 2's trades and captured book landed
    landing = tmp_path / "landing"
    market = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)
    land_synthetic_day(landing, market, "BTCUSDT", DAY_2)
    instance = dg.DagsterInstance.ephemeral()
    with run_simulator_in_thread(symbols=["BTCUSDT"], seed=SEED, trades_per_day=TRADES_PER_DAY,
                                 live=False) as sim:  # fmt: skip
        resources = {
            "iceberg": IcebergCatalogResource.local(tmp_path / "iceberg"),
            "binance_bulk": BinanceBulkResource(base_url=sim.http_url),
            "feast": FeastResource.local(tmp_path / "feast"),
            "mlflow": MlflowResource.local(tmp_path / "mlflow", tmp_path / "models"),
            "landing": LandingResource(root=str(landing)),
        }
        frame = {"training_set": {"config": {"symbols": [INSTRUMENT], "last_days": 2}}}

        def run(assets: list, **kwargs) -> dg.ExecuteInProcessResult:
            result = dg.materialize(assets, resources=resources, instance=instance, **kwargs)
            assert result.success
            return result

        run(DAY_ASSETS, partition_key=f"{DAY_1}|{INSTRUMENT}")
        chain = [feast_registry, training_set, full_model, recent_training_rows,
                 incremental_model, onnx_model, registered_model]  # fmt: skip
        registered = run(chain, run_config={"ops": frame | {
            "full_model": {"config": {"n_trees": 30, "n_folds": 3}}}})  # fmt: skip
        version = str(metadata_of(registered, "registered_model")["version"])
        run([*DAY_ASSETS, bronze_book, silver_book], partition_key=f"{DAY_2}|{INSTRUMENT}")
        run([feast_registry, training_set], run_config={"ops": frame})

        # Act
        replayed = run([backtest], partition_key=version)

    # Assert: the version is a partition; only the rows after its training data were replayed
    # (day 1's last minute, unlabelled when it trained, and day 2)
    assert instance.get_dynamic_partitions(MODEL_VERSIONS) == [version]
    meta = metadata_of(replayed, "backtest")
    assert meta["period_start"] > metadata_of(registered, "registered_model")["data_end"]
    assert meta["watermark"] >= dt.datetime(2024, 3, 2, 23, 58, tzinfo=dt.UTC).timestamp()
    states = watermark_states(instance)
    assert {a: states[a] for a in assets_of(BACKTEST_TEST)} == expected_states(
        assets_of(BACKTEST_TEST)
    )
    # ... with the gate's baselines and the plots; the fills and equity written per day
    assert all(name in meta["baselines"] for name in ("model", "zero", "last return", "buy & hold"))
    assert meta["equity"].startswith("![") and meta["daily_pnl"].startswith("![")
    folder = Path(meta["outputs"])
    days = sorted(p.name for p in folder.iterdir())
    assert days[-1] == f"day={DAY_2}" and set(days) <= {f"day={DAY_1}", f"day={DAY_2}"}
    fills = pl.concat(pl.read_parquet(folder / day / "fills.parquet") for day in days)
    equity = pl.concat(pl.read_parquet(folder / day / "equity.parquet") for day in days)
    assert fills.height == meta["fills"] > 0 and meta["orders_without_data"] == 0
    assert float(equity["equity"][-1]) - 10_000.0 == pytest.approx(meta["pnl"])
    # ... every day-2 order walked the captured book (day 1 has none: its fills are on bars)
    day_2 = fills.filter(pl.from_epoch("time_ns", time_unit="ns").dt.date() == DAY_2)
    assert day_2.height > 0 and day_2["source"].unique().to_list() == [BOOK]
