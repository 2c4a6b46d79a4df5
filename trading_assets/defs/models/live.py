"""Models in production: live metrics from the predictions log, and the served model's history.

``live_model_metrics`` scores the sidecar's landed predictions against the returns that followed
(``bars_1s``; see :mod:`trading_assets.lib.models.live_metrics` for why the bars) every 5 minutes
and keeps the result as Parquet under the data dir. ``served_model`` is not computed by a run:
the ``model_rollout`` sensor (``sensors/rollout.py``) records each alias move as one of its
materializations, with the evidence, so its history is the rollout's audit trail and its lineage
shows what it was decided from.
"""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from trading_assets.defs.automation import once_per_tick
from trading_assets.defs.lakehouse.assets import bars_1s
from trading_assets.defs.models.registry import challenger_model
from trading_assets.defs.models.training import GROUP
from trading_assets.defs.store_retries import retry_on_store_outage
from trading_assets.defs.watermark import watermark_from_ns
from trading_assets.lib.asset_names import SERVED_MODEL
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG
from trading_assets.lib.models.live_metrics import (
    NS,
    LiveMetricsReport,
    evaluate_live,
    served_timeline_markdown,
    write_report,
)
from trading_assets.lib.settings import load_settings
from trading_assets.resources.iceberg import IcebergCatalogResource
from trading_assets.resources.landing import LandingResource

LIVE_METRICS_CRON = "*/5 * * * *"
SERVED_MODEL_KEY = dg.AssetKey(SERVED_MODEL)
NO_MATURED_PREDICTIONS = "no prediction in the window whose outcome the bars already hold"
_TABLE_COLUMNS = (
    "model_version",
    "role",
    "predictions",
    "matured",
    "ic",
    "hit_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "error_rate",
)


class LiveMetricsConfig(dg.Config):
    window_hours: float = Field(default=6.0, description="Hours of predictions scored.")
    output_dir: str = Field(
        default="", description="Folder for the Parquet files (empty: <data dir>/live_metrics)."
    )


def _cell(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_markdown(metrics: pl.DataFrame) -> str:
    """The per version × role metrics as a Markdown table."""
    if metrics.is_empty():
        return "_no served predictions in the window_"
    lines = ["| " + " | ".join(_TABLE_COLUMNS) + " |", "|" + "---|" * len(_TABLE_COLUMNS)]
    for row in metrics.select(_TABLE_COLUMNS).iter_rows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _timestamp(ns: int) -> dg.MetadataValue:
    return dg.MetadataValue.timestamp(dt.datetime.fromtimestamp(ns / NS, dt.UTC))


def live_metrics_metadata(report: LiveMetricsReport, path: Path) -> dict[str, dg.MetadataValue]:
    """Counts, the metrics table, the served-timeline plot and the event-time marks."""
    scored = report.scored
    metadata: dict[str, dg.MetadataValue] = {
        "path": dg.MetadataValue.path(str(path)),
        "predictions": dg.MetadataValue.int(scored.height),
        "matured": dg.MetadataValue.int(int(scored["matured"].sum())),
        "versions": dg.MetadataValue.int(scored["model_version"].n_unique()),
        "metrics": dg.MetadataValue.md(metrics_markdown(report.metrics)),
        "served": dg.MetadataValue.md(
            served_timeline_markdown(report.ranges, report.metrics, "served versions by role")
        ),
        "window_start": _timestamp(report.window_start_ns),
        "window_end": _timestamp(report.window_end_ns),
        **watermark_from_ns(report.watermark_ns, NO_MATURED_PREDICTIONS),
    }
    return metadata


@dg.asset(
    deps=[bars_1s],
    group_name=GROUP,
    kinds={"polars", "parquet"},
    automation_condition=once_per_tick(LIVE_METRICS_CRON),
)
@retry_on_store_outage
def live_model_metrics(
    config: LiveMetricsConfig, iceberg: IcebergCatalogResource, landing: LandingResource
) -> dg.MaterializeResult:
    """Live IC, hit rate, latency and error rate per model version and role, and who served when."""
    report = evaluate_live(
        iceberg.lakehouse(),
        landing.location(),
        end_ns=time.time_ns(),
        window_s=config.window_hours * 3600,
        horizon_s=FEATURE_CONFIG.label_horizon_s,
    )
    default_folder = load_settings().data_dir / "live_metrics"
    folder = Path(config.output_dir) if config.output_dir else default_folder
    metrics_path, _ = write_report(report, folder)
    return dg.MaterializeResult(metadata=live_metrics_metadata(report, metrics_path))


served_model = dg.AssetSpec(
    SERVED_MODEL_KEY,
    deps=[challenger_model, live_model_metrics],
    group_name=GROUP,
    kinds={"mlflow"},
    description=(
        "The versions behind @champion, @canary and @shadow; each rollout move by the "
        "model_rollout sensor is a materialization with its evidence."
    ),
)
