"""Incremental model → ONNX (parity-gated) → MLflow version → @challenger (evaluation-gated).

Every version is recorded in MLflow; the blocking ``beats_baselines`` check writes its verdict on
the version registered in its own run (tags ``gate.beats_baselines`` and ``gate.reason``). Only a
version it passed reaches ``challenger_model``, which points ``@challenger`` at it, on every path:
a failed check stops its run there, automation does not start ``challenger_model`` after one,
and ``challenger_model`` itself refuses a version the gate did not pass (as does every alias
write, :func:`trading_assets.lib.models.registry.require_gate_passed`), so a run started by hand
from the UI or the CLI cannot move the alias either. A refused version stays recorded without
the alias and the failure shows in the UI with its evidence.

The check judges the model ``registered_model`` registered: that asset records the SHA-256 of
the incremental model file it read (``model_sha256``), and when the file the check reads has
another digest (a retrain landed in between) the check fails its run without judging that
model, and the version's verdict says so (``failed``): it is never served.
"""

from collections.abc import Sequence

import dagster as dg
import numpy as np
from pydantic import Field

from trading_assets.defs.models.metadata import gate_metadata
from trading_assets.defs.models.training import GROUP, incremental_model, training_frame_path
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.defs.watermark import carried_watermark
from trading_assets.lib import storage
from trading_assets.lib.asset_names import MODEL_VERSIONS
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.models import artifacts as files
from trading_assets.lib.models import metrics as model_metrics
from trading_assets.lib.models.evaluation import WalkForwardReport, design_matrix
from trading_assets.lib.models.training import HoldoutReport, TrainedModel
from trading_assets.lib.settings import SettingsError, load_settings
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.mlflow import MlflowResource

PARITY_SAMPLE_ROWS = 1_000
PARITY_SEED = 0
MODEL_SHA256 = "model_sha256"  # registered_model's metadata: the model file it registered
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()
# Requested in the same tick as its asset, so the asset's children may be requested with them:
# a check without a condition of its own would count as not passed until the run is over.
WITH_ITS_ASSET = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.will_be_requested()
).with_label("with_its_asset")
# Never after a registered version the blocking evaluation check failed (or did not judge).
FOLLOW_GATED_UPSTREAM = (
    FOLLOW_UPSTREAM & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager_once_gated")


class RegisteredModelConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Feature service recorded with the version."
    )


def gate_margin(variable: str, default: str = "0") -> float | None:
    """A gate margin from the settings: a number, or ``none`` to skip that test."""
    raw = (load_settings().tuning(variable) or default).strip().lower()
    if raw in ("none", ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{variable}: expected a number or 'none', got {raw!r}") from None


class EvaluationGateConfig(dg.Config):
    ic_margin: float | None = Field(
        default_factory=lambda: gate_margin("MODEL_GATE_IC_MARGIN"),
        description="IC the model must beat the best baseline by (None: skip). "
        "Default from MODEL_GATE_IC_MARGIN, else 0.",
    )
    pnl_margin: float | None = Field(
        default_factory=lambda: gate_margin("MODEL_GATE_PNL_MARGIN"),
        description="After-fee P&L over the best baseline (None: skip). "
        "Default from MODEL_GATE_PNL_MARGIN ('none' skips), else 0.",
    )
    incremental_ic_tolerance: float | None = Field(
        default_factory=lambda: gate_margin("MODEL_GATE_INCREMENTAL_IC_TOLERANCE", "0.05"),
        description="IC the new trees may cost on the held-out newest rows beyond the holdout's "
        "noise (None: skip). Default from MODEL_GATE_INCREMENTAL_IC_TOLERANCE, else 0.05.",
    )
    max_ic_p_value: float | None = Field(
        default_factory=lambda: gate_margin(
            "MODEL_GATE_MAX_IC_P_VALUE", str(model_metrics.MAX_IC_P_VALUE)
        ),
        description="Largest one-sided p-value of the out-of-sample IC on non-overlapping rows "
        f"(None: skip). Default from MODEL_GATE_MAX_IC_P_VALUE, else "
        f"{model_metrics.MAX_IC_P_VALUE:g}.",
    )


def version_metrics(report: WalkForwardReport, holdout: HoldoutReport | None) -> dict[str, float]:
    """The recipe's walk-forward scores (``wf_*``) and the registered model's own scores on the
    held-out newest rows (``holdout_*``), next to the full model's on the same rows."""
    metrics = {f"wf_{k}": v for k, v in report.pooled.as_dict().items()}
    if holdout is not None:
        metrics |= {f"holdout_{k}": v for k, v in holdout.incremental.as_dict().items()}
        metrics |= {f"holdout_full_{k}": v for k, v in holdout.full.model.as_dict().items()}
        metrics["holdout_ic_difference_se"] = holdout.ic_difference_se
    return metrics


def parity_service(feast: FeastResource, features: Sequence[str]) -> str:
    """The feature service whose training frame a model of ``features`` is checked on: the
    training service's when it holds them all, else the first other one that does."""
    for service in sorted(spec.SERVICES, key=lambda name: name != spec.TRAINING_SERVICE):
        columns = offline.parquet_columns(training_frame_path(feast, service))
        if columns is not None and set(columns).issuperset(features):
            return service
    raise ValueError(f"no feature service has a training frame with all of {list(features)}")


def parity_sample(feast: FeastResource, model: TrainedModel, service: str) -> np.ndarray:
    """A fixed sample of training rows (seeded) in the model's feature order."""
    frame = offline.read_frame(training_frame_path(feast, service))
    rows = frame.sample(min(PARITY_SAMPLE_ROWS, frame.height), seed=PARITY_SEED)
    return design_matrix(rows, model.feature_names)


@dg.asset(
    deps=[incremental_model],
    group_name=GROUP,
    kinds={"onnx"},
    automation_condition=FOLLOW_UPSTREAM,
)
@retry_on_store_outage
def onnx_model(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> dg.MaterializeResult:
    """The incremental model exported to ONNX with its feature order in the model metadata."""
    from trading_assets.lib.models.onnx_export import export_onnx

    model = files.load_model(mlflow.model_location(files.INCREMENTAL_FILE))
    onnx_bytes = export_onnx(model.booster, model.feature_names)
    uri = storage.as_uri(files.write_atomic(mlflow.model_location(files.ONNX_FILE), onnx_bytes))
    context.log.info(f"ONNX export: {len(onnx_bytes)} bytes at {uri}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(uri),
            "bytes": dg.MetadataValue.int(len(onnx_bytes)),
            "trees": dg.MetadataValue.int(model.trees),
            "features": dg.MetadataValue.json(list(model.feature_names)),
            "watermark": dg.MetadataValue.timestamp(model.time_end),
        }
    )


@dg.asset_check(asset=onnx_model, blocking=True)
@retry_on_store_outage
def onnx_parity(feast: FeastResource, mlflow: MlflowResource) -> dg.AssetCheckResult:
    """XGBoost and ONNX Runtime agree within 1e-5 on a fixed sample of training rows."""
    from trading_assets.lib.models.onnx_export import parity

    model = files.load_model(mlflow.model_location(files.INCREMENTAL_FILE))
    onnx_bytes = storage.read_bytes(mlflow.model_location(files.ONNX_FILE))
    service = parity_service(feast, model.feature_names)
    report = parity(model.booster, onnx_bytes, parity_sample(feast, model, service))
    return dg.AssetCheckResult(
        passed=report.passed,
        metadata={
            "max_abs_diff": dg.MetadataValue.float(report.max_abs_diff),
            "tolerance": dg.MetadataValue.float(report.tolerance),
            "rows": dg.MetadataValue.int(report.rows),
            "sampled_from": dg.MetadataValue.text(service),
        },
    )


@dg.asset(
    deps=[onnx_model],
    group_name=GROUP,
    kinds={"mlflow"},
    automation_condition=FOLLOW_UPSTREAM,
)
@retry_on_store_outage
def registered_model(
    context: dg.AssetExecutionContext,
    config: RegisteredModelConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """A new MLflow version of the ONNX model with its features, data span and metrics."""
    from trading_assets.lib.models.onnx_export import parity
    from trading_assets.lib.models.registry import register_model

    model, model_sha256 = files.load_model_and_digest(mlflow.model_location(files.INCREMENTAL_FILE))
    onnx_bytes = storage.read_bytes(mlflow.model_location(files.ONNX_FILE))
    if model.report is None:
        raise ValueError("the incremental model carries no walk-forward report of its full model")
    gate = parity(model.booster, onnx_bytes, parity_sample(feast, model, config.feature_service))
    version = register_model(
        mlflow.ready_uri(),
        mlflow.model_name,
        onnx_bytes,
        model.feature_names,
        config.feature_service,
        data_start=model.data_start,
        data_end=model.time_end,
        metrics=version_metrics(model.report, model.holdout),
        params={
            **model.params,
            "full_trees": model.full_trees,
            "trees": model.trees,
            "label": model.label,
        },
        parity_report=gate,
        artifact_location=mlflow.artifact_location,
    )
    context.log.info(f"{mlflow.model_name} version {version.version} recorded")
    # The version becomes a partition of the backtest, to be replayed once data follows it.
    context.instance.add_dynamic_partitions(MODEL_VERSIONS, [str(version.version)])
    return dg.MaterializeResult(
        metadata={
            "model_name": dg.MetadataValue.text(mlflow.model_name),
            "version": dg.MetadataValue.text(str(version.version)),
            "run_id": dg.MetadataValue.text(str(version.run_id)),
            "feature_service": dg.MetadataValue.text(config.feature_service),
            "data_start": dg.MetadataValue.timestamp(model.data_start),
            "data_end": dg.MetadataValue.timestamp(model.time_end),
            "watermark": dg.MetadataValue.timestamp(model.time_end),
            "onnx_parity_max_abs_diff": dg.MetadataValue.float(gate.max_abs_diff),
            MODEL_SHA256: dg.MetadataValue.text(model_sha256),
        }
    )


def version_registered_in_run(instance: dg.DagsterInstance, run_id: str) -> tuple[str, str]:
    """The version number ``registered_model`` recorded in run ``run_id``, and the SHA-256 of
    the model file it registered ("" when not recorded)."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    registrations = [
        m.metadata
        for entry in entries
        if (m := entry.asset_materialization) is not None
        and m.asset_key == registered_model.key
        and "version" in m.metadata
    ]
    if not registrations:
        # The model file alone may belong to another version than the newest registered one,
        # so a verdict without its own run's registration could land on the wrong version.
        raise ValueError(
            f"run {run_id} registered no model version: the evaluation gate judges only the "
            "version registered in its own run; materialize registered_model with it"
        )
    metadata = registrations[-1]
    digest = metadata.get(MODEL_SHA256)
    return str(metadata["version"].value), "" if digest is None else str(digest.value)


@dg.asset_check(asset=registered_model, blocking=True, automation_condition=WITH_ITS_ASSET)
@retry_on_store_outage
def beats_baselines(
    context: dg.AssetCheckExecutionContext, config: EvaluationGateConfig, mlflow: MlflowResource
) -> dg.AssetCheckResult:
    """Out of sample, the model's trading rule beats the zero, last-return and buy-and-hold
    baselines by the set margins with a significant IC, and its newest trees hold up."""
    from trading_assets.lib.models.registry import record_gate_verdict

    version, registered_sha256 = version_registered_in_run(context.instance, context.run.run_id)
    # The served model's file carries both reports, so a full retrain landing meanwhile cannot
    # pair this version with another model's evaluation; a retrain of the file itself is caught
    # by its digest.
    model, model_sha256 = files.load_model_and_digest(mlflow.model_location(files.INCREMENTAL_FILE))
    uri, name = mlflow.ready_uri(), mlflow.model_name
    if model_sha256 != registered_sha256:
        reason = (
            f"not judged: the incremental model file changed after version {version} was "
            f"registered from it (sha256 {registered_sha256 or 'not recorded'} → {model_sha256})"
        )
        record_gate_verdict(uri, name, version, False, reason, context.run.run_id)
        raise dg.Failure(
            description=f"{reason}; register the new model to have it judged",
            metadata={
                "version": dg.MetadataValue.text(version),
                "registered_sha256": dg.MetadataValue.text(registered_sha256),
                "file_sha256": dg.MetadataValue.text(model_sha256),
            },
            allow_retries=False,
        )
    if model.report is None:
        raise ValueError("the incremental model carries no walk-forward report of its full model")
    passed, reason, metadata = gate_metadata(
        model.report,
        model.holdout,
        config.ic_margin,
        config.pnl_margin,
        config.incremental_ic_tolerance,
        max_ic_p_value=config.max_ic_p_value,
    )
    record_gate_verdict(uri, name, version, passed, reason, context.run.run_id)
    context.log.info(f"{name} version {version} {'passed' if passed else 'failed'} the gate")
    return dg.AssetCheckResult(
        passed=passed, metadata={**metadata, "version": dg.MetadataValue.text(version)}
    )


def latest_registered_version(instance: dg.DagsterInstance) -> str:
    """The version number the newest registered_model materialization recorded."""
    event = instance.get_latest_materialization_event(registered_model.key)
    materialization = None if event is None else event.asset_materialization
    if materialization is None or "version" not in materialization.metadata:
        raise ValueError("registered_model has no recorded version yet")
    return str(materialization.metadata["version"].value)


@dg.asset(
    deps=[registered_model],
    group_name=GROUP,
    kinds={"mlflow"},
    automation_condition=FOLLOW_GATED_UPSTREAM,
)
@retry_on_store_outage
def challenger_model(
    context: dg.AssetExecutionContext, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """@challenger on the newest registered version, once the evaluation gate passed it."""
    from trading_assets.lib.models.registry import UngatedVersionError, set_alias

    version = latest_registered_version(context.instance)
    try:
        set_alias(mlflow.ready_uri(), mlflow.model_name, "challenger", version)
    except UngatedVersionError as refused:
        raise dg.Failure(
            description=f"{refused}; @challenger stays where it was",
            metadata={"version": dg.MetadataValue.text(version)},
            allow_retries=False,
        ) from refused
    context.log.info(f"{mlflow.model_name}@challenger -> version {version}")
    return dg.MaterializeResult(
        metadata={
            "model_name": dg.MetadataValue.text(mlflow.model_name),
            "version": dg.MetadataValue.text(version),
            "alias": dg.MetadataValue.text("challenger"),
            **carried_watermark(context.instance, registered_model.key),
        }
    )
