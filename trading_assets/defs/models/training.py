"""Training frames → full model (every 6 h) → incremental model (every 5 min).

Models pass between assets as files at the MLflow resource's models location (a folder locally,
S3 in production; replaced atomically), and training frames at Feast's training location, so each
step reads what the previous materialization left, on whichever machine it ran, never an
in-memory object or another worker's disk.
"""

import datetime as dt

import dagster as dg
import polars as pl
from pydantic import Field

from trading_assets.defs.automation import cron_tick_with_upstream, once_per_tick
from trading_assets.defs.features.assets import features, training_set
from trading_assets.defs.lakehouse.assets import bars_1s
from trading_assets.defs.models.metadata import full_model_metadata, holdout_markdown
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.defs.watermark import watermark_metadata
from trading_assets.lib import storage
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.recent import RECENT_PREFIX
from trading_assets.lib.features import check_model_features, label_names
from trading_assets.lib.models import artifacts as files
from trading_assets.resources.feast import FeastResource
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.mlflow import MlflowResource

GROUP = "models"
FULL_CRON = "0 */6 * * *"
INCREMENTAL_CRON = "*/5 * * * *"


# on_cron, with its tick counted only once the training frame exists (see
# cron_tick_with_upstream), and never while a full model is already training.
FULL_CADENCE = (
    cron_tick_with_upstream(FULL_CRON)
    & dg.AutomationCondition.all_deps_updated_since_cron(FULL_CRON)
    & ~dg.AutomationCondition.in_progress()
).with_label(f"on_cron({FULL_CRON}) once a training frame exists")

# on_cron, except that it waits for the newest rows alone: on_cron waits for every dependency to
# update after the tick, and the full model only moves every 6 hours. A full model must exist
# (or be trained on the same tick): the incremental one boosts on top of it.
INCREMENTAL_CADENCE = (
    cron_tick_with_upstream(INCREMENTAL_CRON)
    & dg.AutomationCondition.all_deps_updated_since_cron(INCREMENTAL_CRON).ignore(
        dg.AssetSelection.assets("full_model")
    )
    & ~dg.AutomationCondition.in_progress()
).with_label(f"on_cron({INCREMENTAL_CRON}) of the newest rows, on a full model")


class FullModelConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Feature service whose features are used."
    )
    n_trees: int = Field(default=100, description="Boosting rounds of the full model.")
    n_folds: int = Field(default=4, description="Walk-forward folds for the evaluation.")
    embargo_seconds: float | None = Field(
        default=None,
        description="Gap between the last training label and each test fold "
        "(None: one label horizon).",
    )
    threads: int = Field(default=2, description="XGBoost threads.")
    label: str = Field(default="", description="Label column (empty: the feature spec's label).")
    features: list[str] = Field(
        default_factory=list,
        description="Feature columns, in order (empty: the service's features in the frame); "
        "level features (vwap_{w}s, display only) are refused.",
    )


class RecentRowsConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Feature service whose features are kept."
    )
    hours: float = Field(default=2.0, description="Newest hours of labelled rows per symbol.")
    sample_every_s: int = Field(default=1, description="One row per symbol every N seconds.")


class IncrementalModelConfig(dg.Config):
    feature_service: str = Field(
        default=spec.TRAINING_SERVICE, description="Service whose newest rows are boosted on."
    )
    max_new_trees: int = Field(default=10, description="Most trees added to the full model.")


def training_frame_path(feast: FeastResource, service: str) -> str:
    """Where training_set writes the service's point-in-time frame (a path or URI)."""
    return storage.join(feast.training_dir(), f"{service}.parquet")


def recent_frame_path(feast: FeastResource, service: str) -> str:
    """Where recent_training_rows writes the service's newest rows (a path or URI)."""
    return storage.join(feast.training_dir(), f"{RECENT_PREFIX}{service}.parquet")


def service_features(frame: pl.DataFrame, service: str) -> list[str]:
    """The service's model inputs that the frame holds, in the service's order; a service that
    serves level features (display only) is refused."""
    wanted = spec.training_features(service)
    present = [name for name in wanted if name in frame.columns]
    if not present:
        raise ValueError(f"the training frame holds none of {service}'s features")
    return present


def model_inputs(frame: pl.DataFrame, config: FullModelConfig) -> list[str]:
    """The configured features, or the service's; level features are refused either way."""
    if not config.features:
        return service_features(frame, config.feature_service)
    check_model_features(config.features)
    return list(config.features)


@dg.asset(
    deps=[features, bars_1s],
    group_name=GROUP,
    kinds={"iceberg", "parquet"},
    automation_condition=once_per_tick(INCREMENTAL_CRON),
)
@retry_on_store_outage
def recent_training_rows(
    context: dg.AssetExecutionContext,
    config: RecentRowsConfig,
    iceberg: IcebergCatalogResource,
    feast: FeastResource,
) -> dg.MaterializeResult:
    """Newest labelled rows per symbol (gold features + known labels), for the incremental model."""
    from trading_assets.lib.feature_store.recent import recent_rows

    result = recent_rows(
        iceberg.lakehouse(),
        feast.offline_features_dir(),
        feast.training_dir(),
        config.feature_service,
        hours=config.hours,
        sample_every_s=config.sample_every_s,
    )
    context.log.info(f"recent rows: {result.rows} ({result.per_symbol}) at {result.path}")
    metadata: dict[str, dg.MetadataValue] = {
        "path": dg.MetadataValue.path(result.path),
        "dagster/row_count": dg.MetadataValue.int(result.rows),
        "rows_per_symbol": dg.MetadataValue.json(result.per_symbol),
        "partitions": dg.MetadataValue.json([f"{d}|{s}" for d, s in result.partitions]),
    }
    if result.first is not None:
        metadata["data_start"] = dg.MetadataValue.timestamp(result.first)
    metadata |= watermark_metadata(result.last, "no labelled rows in the newest hours")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=[training_set],
    group_name=GROUP,
    kinds={"xgboost"},
    automation_condition=FULL_CADENCE,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=7)),
)
@retry_on_store_outage
def full_model(
    context: dg.AssetExecutionContext,
    config: FullModelConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Full XGBoost return model on the newest training frame, with a walk-forward report."""
    from trading_assets.lib.models import DEFAULT_PARAMS, train_full

    frame = offline.read_frame(training_frame_path(feast, config.feature_service))
    names = model_inputs(frame, config)
    label = config.label or label_names(spec.FEATURE_CONFIG)[0]
    missing = sorted({label, *names} - set(frame.columns))
    if missing:
        raise ValueError(f"the training frame lacks {missing}")
    params = DEFAULT_PARAMS | {"nthread": config.threads}
    embargo = (
        None if config.embargo_seconds is None else dt.timedelta(seconds=config.embargo_seconds)
    )
    model = train_full(
        frame, names, label, params, n_trees=config.n_trees, n_folds=config.n_folds, embargo=embargo
    )
    uri = storage.as_uri(files.save_model(model, mlflow.model_location(files.FULL_FILE)))
    context.log.info(f"full model: {model.trees} trees on {model.training_rows} rows at {uri}")
    return dg.MaterializeResult(metadata=full_model_metadata(model, uri))


@dg.asset(
    deps=[full_model, recent_training_rows],
    group_name=GROUP,
    kinds={"xgboost"},
    automation_condition=INCREMENTAL_CADENCE,
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(minutes=15), warn_window=dt.timedelta(minutes=7)
    ),
)
@retry_on_store_outage
def incremental_model(
    context: dg.AssetExecutionContext,
    config: IncrementalModelConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The current full model plus a bounded number of trees boosted on the newest rows."""
    from trading_assets.lib.models import train_incremental

    base = files.load_model(mlflow.model_location(files.FULL_FILE))
    newest = offline.read_frame(recent_frame_path(feast, config.feature_service))
    model = train_incremental(base, newest, config.max_new_trees)
    uri = storage.as_uri(files.save_model(model, mlflow.model_location(files.INCREMENTAL_FILE)))
    context.log.info(f"incremental model: {model.trees} trees ({base.trees} full) at {uri}")
    holdout: dict[str, dg.MetadataValue] = {}
    if model.holdout is not None:
        holdout = {
            "holdout": dg.MetadataValue.md(holdout_markdown(model.holdout)),
            "holdout_full_ic": dg.MetadataValue.float(model.holdout.full.model.ic),
            "holdout_incremental_ic": dg.MetadataValue.float(model.holdout.incremental.model.ic),
            "holdout_ic_difference_se": dg.MetadataValue.float(model.holdout.ic_difference_se),
        }
    return dg.MaterializeResult(
        metadata=holdout
        | {
            "path": dg.MetadataValue.path(uri),
            "full_trees": dg.MetadataValue.int(model.full_trees),
            "new_trees": dg.MetadataValue.int(model.trees - model.full_trees),
            "training_rows": dg.MetadataValue.int(model.training_rows),
            "training_seconds": dg.MetadataValue.float(round(model.seconds, 3)),
            "data_start": dg.MetadataValue.timestamp(model.time_start),
            "data_end": dg.MetadataValue.timestamp(model.time_end),
            "watermark": dg.MetadataValue.timestamp(model.time_end),
            "full_model_data_end": dg.MetadataValue.timestamp(base.time_end),
        }
    )
