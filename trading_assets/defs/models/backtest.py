"""backtest: a registered model version replayed on the rows that came after its training data.

One partition per version (``model_versions``; registered_model adds each new one). A run reads
the version's ONNX model from MLflow, the newest training frame of its feature service and its
newest rows (refreshed every 5 minutes for the incremental model), and the lakehouse's silver
book and 1 s bars of the days they cover, and replays them through the served decision path
(:mod:`trading_assets.lib.backtest`). The fills and the equity curve are written
as Parquet under the models location, one folder per version and day
(``backtests/version=V/day=D/``); the figures, the gate's baselines and the plots go in the
materialization's metadata. The ``model_backtests`` sensor re-runs the serving versions' backtests
every hour, as their unseen period grows.
"""

import io

import dagster as dg
import polars as pl
from pydantic import Field

from trading_assets.defs.models.registry import registered_model
from trading_assets.defs.models.training import recent_frame_path, training_frame_path
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.lib import storage
from trading_assets.lib.asset_names import BACKTEST, BACKTEST_JOB, MODEL_VERSIONS
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.features import label_names
from trading_assets.lib.models.policy import ASSUMED_SPREAD_BPS, FEE_BP
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.mlflow import MlflowResource

GROUP = "models"
model_versions = dg.DynamicPartitionsDefinition(name=MODEL_VERSIONS)


class BacktestAssetConfig(dg.Config):
    latency_ms: float = Field(default=100.0, description="Decision to venue, in milliseconds.")
    fee_bp: float = Field(default=FEE_BP, description="Exchange fee per side, basis points.")
    assumed_spread_bps: float = Field(
        default=ASSUMED_SPREAD_BPS,
        description="Spread of rows without one, and over a bar's close where no book exists.",
    )
    initial_cash: float = Field(default=10_000.0, description="Starting cash (quote).")


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def write_outputs(root: str, version: str, fills: pl.DataFrame, equity: pl.DataFrame) -> int:
    """The fills and the equity, one folder per day under ``root/version=V/``; days written."""
    dated = [
        frame.with_columns(day=pl.from_epoch("time_ns", time_unit="ns").dt.date())
        for frame in (fills, equity)
    ]
    days = sorted(set(dated[0]["day"].to_list()) | set(dated[1]["day"].to_list()))
    for day in days:
        folder = storage.join(root, f"version={version}", f"day={day}")
        for name, frame in zip(("fills", "equity"), dated, strict=True):
            part = frame.filter(pl.col("day") == day).drop("day")
            storage.write_bytes_atomic(storage.join(folder, f"{name}.parquet"), _parquet(part))
    return len(days)


@dg.asset(
    deps=[registered_model],
    partitions_def=model_versions,
    group_name=GROUP,
    kinds={"onnx", "parquet"},
    name=BACKTEST,
)
@retry_on_store_outage
def backtest(
    context: dg.AssetExecutionContext,
    config: BacktestAssetConfig,
    iceberg: IcebergCatalogResource,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """A model version's trades, fills, equity, drawdown and Sharpe on the rows after its
    training data, against the gate's baselines."""
    from trading_assets.defs.models.backtest_metadata import backtest_metadata
    from trading_assets.lib.backtest.paper import PaperConfig
    from trading_assets.lib.backtest.version import (
        backtest_version,
        lakehouse_markets,
        newest_rows,
    )
    from trading_assets.lib.models.registry import load_version

    version = context.partition_key
    model = load_version(mlflow.ready_uri(), mlflow.model_name, version)
    service = str(model.metadata["feature_service"])
    frames = [offline.read_frame(training_frame_path(feast, service))]
    recent = recent_frame_path(feast, service)
    if storage.exists(recent):
        frames.append(offline.read_frame(recent))
    frame = newest_rows(frames, model.feature_names)
    days = frame[spec.TIMESTAMP_FIELD].dt.date().unique().to_list()
    instruments = frame[spec.ENTITY].unique().sort().to_list()
    markets = lakehouse_markets(iceberg.lakehouse(), instruments, days, config.assumed_spread_bps)
    replay = PaperConfig(
        horizon_s=spec.FEATURE_CONFIG.label_horizon_s,
        latency_ns=round(config.latency_ms * 1e6),
        fee_bp=config.fee_bp,
        assumed_spread_bps=config.assumed_spread_bps,
        initial_cash=config.initial_cash,
    )
    label = label_names(spec.FEATURE_CONFIG)[0]
    result = backtest_version(model, frame, markets, replay, label)
    root = mlflow.model_location("backtests")
    written = write_outputs(root, version, result.result.fills, result.result.equity)
    context.log.info(
        f"version {version}: {result.rows} unseen rows, {result.summary.fills} fills "
        f"({result.summary.fills_by_source}), P&L {result.summary.pnl:+.2f} over {written} days"
    )
    return dg.MaterializeResult(metadata=backtest_metadata(result, root))


backtest_job = dg.define_asset_job(
    BACKTEST_JOB,
    selection=dg.AssetSelection.assets(backtest),
    description="Replay one model version on the rows after its training data.",
)
