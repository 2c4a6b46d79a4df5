"""Training set → full model → incremental model → ONNX (parity-gated) → MLflow registry.

Models pass between assets as files under the resource's models folder (written atomically), so
each step reads what the previous materialization left, never an in-memory object.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from trading_assets.defs.features.assets import training_set
from trading_assets.lib.feature_store import spec
from trading_assets.lib.features import feature_names, label_names
from trading_assets.lib.models import WalkForwardReport
from trading_assets.lib.models import artifacts as files
from trading_assets.lib.models.evaluation import TIME, design_matrix
from trading_assets.lib.models.training import TrainedModel
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.mlflow import MlflowResource

GROUP = "models"
PARITY_SAMPLE_ROWS = 1_000
PARITY_SEED = 0


class FullModelConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Feature service whose features are used."
    )
    n_trees: int = Field(default=100, description="Boosting rounds of the full model.")
    n_folds: int = Field(default=4, description="Walk-forward folds for the evaluation.")


class IncrementalModelConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Training frame to take the newest rows from."
    )
    newest_rows: int = Field(default=5_000, description="Newest frame rows to continue on.")
    max_new_trees: int = Field(default=10, description="Most trees added to the full model.")


class RegisteredModelConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Feature service recorded with the version."
    )
    ic_margin: float | None = Field(
        default=0.0, description="IC the model must beat the best baseline by (None: skip)."
    )
    pnl_margin: float | None = Field(
        default=0.0, description="After-fee P&L over the best baseline (None: skip)."
    )


def training_frame_path(feast: FeastResource, service: str) -> Path:
    return Path(feast.training_dir()) / f"{service}.parquet"


def service_features(frame: pl.DataFrame, service: str) -> list[str]:
    """The service's features that the frame holds, in the service's order."""
    wanted = feature_names(spec.FEATURE_CONFIG, spec.SERVICES[service])
    present = [name for name in wanted if name in frame.columns]
    if not present:
        raise ValueError(f"the training frame holds none of {service}'s features")
    return present


def parity_sample(feast: FeastResource, model: TrainedModel, service: str) -> np.ndarray:
    """A fixed sample of training rows (seeded) in the model's feature order."""
    frame = pl.read_parquet(training_frame_path(feast, service))
    rows = frame.sample(min(PARITY_SAMPLE_ROWS, frame.height), seed=PARITY_SEED)
    return design_matrix(rows, model.feature_names)


def metrics_markdown(report: WalkForwardReport) -> str:
    pooled = report.pooled
    lines = [
        "| forecast | IC | hit rate | RMSE | P&L (after fees) | sides |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("model", "zero", "last"):
        m = getattr(pooled, name)
        lines.append(
            f"| {name} | {m.ic:.4f} | {m.hit_rate:.4f} | {m.rmse:.6f} | {m.pnl:.6f} | {m.trades} |"
        )
    return "\n".join(lines)


def importance_markdown(model: TrainedModel, top: int = 15) -> str:
    ranked = sorted(model.importance_gain.items(), key=lambda kv: kv[1], reverse=True)[:top]
    total = sum(model.importance_gain.values()) or 1.0
    lines = ["| feature | total gain | share |", "|---|---|---|"]
    lines += [f"| {name} | {gain:.4g} | {gain / total:.1%} |" for name, gain in ranked]
    return "\n".join(lines)


@dg.asset(
    deps=[training_set],
    group_name=GROUP,
    kinds={"xgboost"},
    automation_condition=dg.AutomationCondition.on_cron("0 */6 * * *"),
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=7)),
)
def full_model(
    context: dg.AssetExecutionContext,
    config: FullModelConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Full XGBoost return model on the newest training frame, with a walk-forward report."""
    from trading_assets.lib.models import train_full

    frame = pl.read_parquet(training_frame_path(feast, config.feature_service))
    names = service_features(frame, config.feature_service)
    label, _ = label_names(spec.FEATURE_CONFIG)
    model = train_full(frame, names, label, n_trees=config.n_trees, n_folds=config.n_folds)
    path = files.save_model(model, mlflow.models_path() / files.FULL_FILE)
    assert model.report is not None
    context.log.info(f"full model: {model.trees} trees on {model.training_rows} rows at {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "metrics": dg.MetadataValue.md(metrics_markdown(model.report)),
            "feature_importance": dg.MetadataValue.md(importance_markdown(model)),
            "training_rows": dg.MetadataValue.int(model.training_rows),
            "training_seconds": dg.MetadataValue.float(round(model.seconds, 3)),
            "trees": dg.MetadataValue.int(model.trees),
            "features": dg.MetadataValue.int(len(names)),
            "data_start": dg.MetadataValue.timestamp(model.time_start),
            "data_end": dg.MetadataValue.timestamp(model.time_end),
            "model_ic": dg.MetadataValue.float(model.report.pooled.model.ic),
            "model_pnl": dg.MetadataValue.float(model.report.pooled.model.pnl),
        }
    )


@dg.asset(
    deps=[full_model, training_set],
    group_name=GROUP,
    kinds={"xgboost"},
    automation_condition=dg.AutomationCondition.on_cron("*/5 * * * *"),
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(minutes=15), warn_window=dt.timedelta(minutes=7)
    ),
)
def incremental_model(
    context: dg.AssetExecutionContext,
    config: IncrementalModelConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The current full model plus a bounded number of trees boosted on the newest rows."""
    from trading_assets.lib.models import train_incremental

    base = files.load_model(mlflow.models_path() / files.FULL_FILE)
    frame = pl.read_parquet(training_frame_path(feast, config.feature_service))
    newest = frame.sort(TIME).tail(config.newest_rows)
    model = train_incremental(base, newest, config.max_new_trees)
    path = files.save_model(model, mlflow.models_path() / files.INCREMENTAL_FILE)
    context.log.info(f"incremental model: {model.trees} trees ({base.trees} full) at {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "full_trees": dg.MetadataValue.int(model.full_trees),
            "new_trees": dg.MetadataValue.int(model.trees - model.full_trees),
            "training_rows": dg.MetadataValue.int(model.training_rows),
            "training_seconds": dg.MetadataValue.float(round(model.seconds, 3)),
            "data_start": dg.MetadataValue.timestamp(model.time_start),
            "data_end": dg.MetadataValue.timestamp(model.time_end),
        }
    )


@dg.asset(deps=[incremental_model], group_name=GROUP, kinds={"onnx"})
def onnx_model(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> dg.MaterializeResult:
    """The incremental model exported to ONNX with its feature order in the model metadata."""
    from trading_assets.lib.models.onnx_export import export_onnx

    model = files.load_model(mlflow.models_path() / files.INCREMENTAL_FILE)
    onnx_bytes = export_onnx(model.booster, model.feature_names)
    path = files.write_atomic(mlflow.models_path() / files.ONNX_FILE, onnx_bytes)
    context.log.info(f"ONNX export: {len(onnx_bytes)} bytes at {path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "bytes": dg.MetadataValue.int(len(onnx_bytes)),
            "trees": dg.MetadataValue.int(model.trees),
            "features": dg.MetadataValue.json(list(model.feature_names)),
        }
    )


@dg.asset_check(asset=onnx_model, blocking=True)
def onnx_parity(feast: FeastResource, mlflow: MlflowResource) -> dg.AssetCheckResult:
    """XGBoost and ONNX Runtime agree within 1e-5 on a fixed sample of training rows."""
    from trading_assets.lib.models.onnx_export import parity

    model = files.load_model(mlflow.models_path() / files.INCREMENTAL_FILE)
    onnx_bytes = (mlflow.models_path() / files.ONNX_FILE).read_bytes()
    report = parity(model.booster, onnx_bytes, parity_sample(feast, model, spec.TRAINING_SERVICE))
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            "max_abs_diff": dg.MetadataValue.float(report.max_abs_diff),
            "tolerance": dg.MetadataValue.float(report.tolerance),
            "rows": dg.MetadataValue.int(report.rows),
        },
    )


@dg.asset(deps=[onnx_model], group_name=GROUP, kinds={"mlflow"})
def registered_model(
    context: dg.AssetExecutionContext,
    config: RegisteredModelConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """A new MLflow version of the ONNX model; @challenger only when it beats the baselines."""
    from trading_assets.lib.models import beats_baselines
    from trading_assets.lib.models.onnx_export import parity
    from trading_assets.lib.models.registry import register_model

    folder = mlflow.models_path()
    full = files.load_model(folder / files.FULL_FILE)
    model = files.load_model(folder / files.INCREMENTAL_FILE)
    onnx_bytes = (folder / files.ONNX_FILE).read_bytes()
    if full.report is None:
        raise ValueError("the full model carries no walk-forward report")
    gate = parity(model.booster, onnx_bytes, parity_sample(feast, model, config.feature_service))
    promote = beats_baselines(full.report.pooled, config.ic_margin, config.pnl_margin)
    pooled, best = full.report.pooled, max(full.report.pooled.zero.ic, full.report.pooled.last.ic)
    reason = (
        f"walk-forward IC {pooled.model.ic:.4f} vs best baseline {best:.4f}, P&L "
        f"{pooled.model.pnl:.6f} vs {max(pooled.zero.pnl, pooled.last.pnl):.6f} "
        f"(margins IC {config.ic_margin}, P&L {config.pnl_margin})"
    )
    version = register_model(
        mlflow.ready_uri(),
        mlflow.model_name,
        onnx_bytes,
        model.feature_names,
        config.feature_service,
        data_start=full.time_start,
        data_end=model.time_end,
        metrics={f"wf_{k}": v for k, v in pooled.as_dict().items()},
        params={
            **model.params,
            "full_trees": model.full_trees,
            "trees": model.trees,
            "label": model.label,
        },
        alias="challenger" if promote else None,
        parity_report=gate,
        artifact_location=mlflow.artifact_location,
    )
    verdict = "set @challenger" if promote else "no alias"
    context.log.info(f"{mlflow.model_name} version {version.version}: {verdict}; {reason}")
    return dg.MaterializeResult(
        metadata={
            "model_name": dg.MetadataValue.text(mlflow.model_name),
            "version": dg.MetadataValue.text(str(version.version)),
            "alias": dg.MetadataValue.text("challenger" if promote else "none"),
            "challenger_set": dg.MetadataValue.bool(promote),
            "reason": dg.MetadataValue.text(
                ("beats baselines: " if promote else "gate failed: ") + reason
            ),
            "feature_service": dg.MetadataValue.text(config.feature_service),
            "data_start": dg.MetadataValue.timestamp(full.time_start),
            "data_end": dg.MetadataValue.timestamp(model.time_end),
            "onnx_parity_max_abs_diff": dg.MetadataValue.float(gate.max_abs_diff),
        }
    )
