"""Cross-venue features through Dagster and Feast into a model, with a planted lead-lag.

The reference instrument is the simulator's Binance spot day with no planted drift (edge 0: its own
past says nothing of its future). The own instrument is that very tape shown ``DELAY`` later, the
simulator's lead-lag across venues (same latent, a later venue) at the bar level: its bars are
the reference's shifted by the delay. A model declaring the ``signal_cross_v1`` service must find
the lead (its walk-forward IC is clearly positive and its top feature is a cross feature), and
with no delay, where nothing is planted, find nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from streaming.simulator.server import run_simulator_in_thread
from trading_assets.defs.features.assets import feast_registry, training_set
from trading_assets.defs.features.cross import build_cross_features_asset
from trading_assets.defs.ingest.partitions import DATE_DIMENSION, INSTRUMENT_DIMENSION
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
from trading_assets.defs.models.training import full_model
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.cross_gold import read_cross
from trading_assets.lib.feature_store.gold import build_gold_features
from trading_assets.lib.features.cross_venue import cross_feature_names
from trading_assets.lib.lakehouse.pipeline import to_iceberg_arrow
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import read_partition, replace_partition
from trading_assets.resources import (
    BinanceBulkResource,
    FeastResource,
    IcebergCatalogResource,
    MlflowResource,
)

from .watermarks import CROSS_TEST, assets_of, expected_states, watermark_states

pytestmark = [pytest.mark.venues]

DAY = dt.date(2024, 3, 1)
REFERENCE = "BINANCE:BTCUSDT"
OWN = "COINBASE:BTC-USD"
SERVICE = "signal_cross_v1"
DELAY = dt.timedelta(seconds=5)
TRADES_PER_DAY = 40_000


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    with run_simulator_in_thread(
        symbols=["BTCUSDT"], seed=23, trades_per_day=TRADES_PER_DAY, live=False, edge=0.0
    ) as sim:
        yield sim.http_url


def follower_bars(reference: pl.DataFrame, delay: dt.timedelta) -> pl.DataFrame:
    """The reference's bars as a venue ``delay`` behind shows them, within the day."""
    end = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return reference.with_columns(pl.col("bar_start") + delay, instrument=pl.lit(OWN)).filter(
        pl.col("bar_start") < end
    )


def materialized(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def train_on_pair(tmp_path: Path, simulator: str, delay: dt.timedelta) -> dict:
    """The reference day through the lakehouse, its follower's bars and gold features beside it,
    then cross_features → Feast → training set → full model; the cross and model metadata."""
    resources = {
        "iceberg": IcebergCatalogResource.local(tmp_path / "iceberg"),
        "binance_bulk": BinanceBulkResource(base_url=simulator),
        "feast": FeastResource.local(tmp_path / "feast"),
        "mlflow": MlflowResource.local(tmp_path / "mlflow", tmp_path / "models"),
    }
    instance = dg.DagsterInstance.ephemeral()  # one instance: the watermarks are read back
    lakehouse = [raw_trades, bronze_trades, silver_trades, bars_1s]
    assert dg.materialize(
        lakehouse, partition_key=f"{DAY}|{REFERENCE}", resources=resources, instance=instance
    ).success
    lake = resources["iceberg"].lakehouse()
    bars = lake.table(BARS_1S_TABLE)
    own = follower_bars(read_partition(bars, DAY, REFERENCE), delay)
    replace_partition(bars, DAY, OWN, [to_iceberg_arrow(own, bars.schema())])
    gold = build_gold_features(lake, OWN, DAY)
    offline.export_partition(gold.features, resources["feast"].offline_features_dir(), DAY, OWN)

    pair = dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: dg.DailyPartitionsDefinition(start_date=DAY.isoformat()),
            INSTRUMENT_DIMENSION: dg.StaticPartitionsDefinition([REFERENCE, OWN]),
        }
    )
    cross = build_cross_features_asset(pair, {OWN: REFERENCE})
    crossed = dg.materialize(
        [cross], partition_key=f"{DAY}|{OWN}", resources=resources, instance=instance
    )
    trained = dg.materialize(
        [feast_registry, training_set, full_model],
        resources=resources,
        instance=instance,
        run_config={
            "ops": {
                "training_set": {"config": {"feature_service": SERVICE, "symbols": [OWN]}},
                "full_model": {"config": {"feature_service": SERVICE, "n_trees": 40, "n_folds": 3}},
            }
        },
    )
    assert crossed.success and trained.success
    frame = pl.read_parquet(str(materialized(trained, "training_set")["path"]))
    return {
        "cross": materialized(crossed, "cross_features"),
        "gold": read_cross(lake, OWN, DAY),
        "frame": frame,
        "model": materialized(trained, "full_model"),
        "watermarks": watermark_states(instance),
    }


def top_feature(model: dict) -> str:
    """The first feature of the model's importance table (by gain)."""
    table = str(model["feature_importance"]).split("| feature | total gain | share |")[1]
    return table.split("\n")[2].split("|")[1].strip()


def test_a_model_on_cross_features_finds_the_planted_lead(tmp_path, simulator):
    planted = train_on_pair(tmp_path / "planted", simulator, DELAY)
    control = train_on_pair(tmp_path / "control", simulator, dt.timedelta(0))

    # gold.cross_features holds the own instrument's cross group on its dense 1 s grid
    gold = planted["gold"]
    assert planted["cross"]["reference"] == REFERENCE
    assert planted["cross"]["rows"] == gold.height > 80_000
    assert gold["instrument"].unique().to_list() == [OWN]
    assert planted["cross"]["watermark"] == gold["event_timestamp"].max().timestamp()
    states = planted["watermarks"]
    assert assets_of(CROSS_TEST) <= set(states) and states == expected_states(set(states))
    # The training frame carries the service's features, the cross group included
    frame = planted["frame"]
    assert set(spec.service_features(SERVICE)) <= set(frame.columns)
    assert set(cross_feature_names()) - {"funding_rate"} <= set(frame.columns)
    assert frame["lead_ret_10s"].null_count() < frame.height // 100
    # With no delay, the two venues show the same prices: no basis, no lead
    assert control["gold"]["basis_bps"].drop_nulls().abs().max() == 0.0
    # Planted: the model finds the lead (out of sample, significant) through a cross feature;
    # control: nothing significant (one-sided p-value of the walk-forward IC)
    found, nothing = planted["model"], control["model"]
    assert found["model_ic"] > 0.05 and found["model_ic_p_value"] <= 0.01, found["metrics"]
    assert top_feature(found).startswith(("lead_", "basis_")), found["feature_importance"]
    assert nothing["model_ic_p_value"] > 0.05, nothing["metrics"]
