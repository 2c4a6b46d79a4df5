"""Materialization and check metadata of the model assets: metrics tables and plots."""

import dagster as dg

from trading_assets.lib.models import WalkForwardReport, beats_baselines
from trading_assets.lib.models.plots import importance_markdown, predicted_vs_realized_markdown
from trading_assets.lib.models.training import TrainedModel


def metrics_markdown(report: WalkForwardReport) -> str:
    """Pooled out-of-sample scores of the model next to the zero and last-return baselines."""
    pooled = report.pooled
    lines = [
        f"Out of sample, {len(report.folds)} purged walk-forward folds, "
        f"{pooled.rows} rows, fees {report.fee_bp:g} bp per side.",
        "",
        "| forecast | IC | hit rate | RMSE | P&L (after fees) | sides |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("model", "zero", "last"):
        m = getattr(pooled, name)
        lines.append(
            f"| {name} | {m.ic:.4f} | {m.hit_rate:.4f} | {m.rmse:.6f} | {m.pnl:.6f} | {m.trades} |"
        )
    return "\n".join(lines)


def importance_table(model: TrainedModel, top: int = 15) -> str:
    """The ``top`` features by total split gain, with their share."""
    ranked = sorted(model.importance_gain.items(), key=lambda kv: kv[1], reverse=True)[:top]
    total = sum(model.importance_gain.values()) or 1.0
    lines = ["| feature | total gain | share |", "|---|---|---|"]
    lines += [f"| {name} | {gain:.4g} | {gain / total:.1%} |" for name, gain in ranked]
    return "\n".join(lines)


def full_model_metadata(model: TrainedModel, path: str) -> dict[str, dg.MetadataValue]:
    """Metrics, plots, sizes and the data span of a full model."""
    report = model.report
    assert report is not None, "full models carry their walk-forward report"
    chart = importance_markdown(model.importance_gain, "feature importance (gain share)")
    scatter = predicted_vs_realized_markdown(
        report.sample_predicted, report.sample_realized, "out-of-sample predicted vs realized"
    )
    return {
        "path": dg.MetadataValue.path(path),
        "metrics": dg.MetadataValue.md(metrics_markdown(report)),
        "predicted_vs_realized": dg.MetadataValue.md(scatter),
        "feature_importance": dg.MetadataValue.md(chart + "\n\n" + importance_table(model)),
        "training_rows": dg.MetadataValue.int(model.training_rows),
        "training_seconds": dg.MetadataValue.float(round(model.seconds, 3)),
        "trees": dg.MetadataValue.int(model.trees),
        "features": dg.MetadataValue.int(len(model.feature_names)),
        "data_start": dg.MetadataValue.timestamp(model.time_start),
        "data_end": dg.MetadataValue.timestamp(model.time_end),
        "watermark": dg.MetadataValue.timestamp(model.time_end),
        "model_ic": dg.MetadataValue.float(report.pooled.model.ic),
        "model_pnl": dg.MetadataValue.float(report.pooled.model.pnl),
    }


def gate_metadata(
    report: WalkForwardReport, ic_margin: float | None, pnl_margin: float | None
) -> tuple[bool, str, dict[str, dg.MetadataValue]]:
    """Whether the recipe beats both baselines out of sample by the margins, why, and evidence."""
    pooled = report.pooled
    passed = beats_baselines(pooled, ic_margin, pnl_margin)
    best_ic = max(pooled.zero.ic, pooled.last.ic)
    best_pnl = max(pooled.zero.pnl, pooled.last.pnl)
    reason = (
        f"out-of-sample IC {pooled.model.ic:.4f} vs best baseline {best_ic:.4f} "
        f"(margin {ic_margin}); after-fee P&L {pooled.model.pnl:.6f} vs {best_pnl:.6f} "
        f"(margin {pnl_margin})"
    )
    metadata = {
        "metrics": dg.MetadataValue.md(metrics_markdown(report)),
        "model_ic": dg.MetadataValue.float(pooled.model.ic),
        "best_baseline_ic": dg.MetadataValue.float(best_ic),
        "model_pnl": dg.MetadataValue.float(pooled.model.pnl),
        "best_baseline_pnl": dg.MetadataValue.float(best_pnl),
        "ic_margin": dg.MetadataValue.text(str(ic_margin)),
        "pnl_margin": dg.MetadataValue.text(str(pnl_margin)),
        "reason": dg.MetadataValue.text(reason),
    }
    return passed, reason, metadata
