"""Materialization and check metadata of the model assets: metrics tables and plots."""

import dagster as dg

from trading_assets.lib.models import WalkForwardReport, beats_baselines
from trading_assets.lib.models.metrics import Comparison, Metrics
from trading_assets.lib.models.plots import importance_markdown, predicted_vs_realized_markdown
from trading_assets.lib.models.training import HoldoutReport, TrainedModel, new_trees_hold_up

HEADER = [
    "| forecast | IC | hit rate | RMSE | P&L (after fees) | sides |",
    "|---|---|---|---|---|---|",
]


def _row(label: str, m: Metrics) -> str:
    return f"| {label} | {m.ic:.4f} | {m.hit_rate:.4f} | {m.rmse:.6f} | {m.pnl:.6f} | {m.trades} |"


def _rows(comparison: Comparison, model_name: str = "model") -> list[str]:
    """The model's row, then the zero and last-return baselines' on the same rows."""
    return [
        _row(model_name, comparison.model),
        _row("zero", comparison.zero),
        _row("last", comparison.last),
    ]


def metrics_markdown(report: WalkForwardReport) -> str:
    """Pooled out-of-sample scores of the model next to the zero and last-return baselines."""
    pooled = report.pooled
    lines = [
        f"Out of sample, {len(report.folds)} purged walk-forward folds "
        f"(embargo {report.embargo_s:g} s), {pooled.rows} rows, "
        f"fees {report.fee_bp:g} bp per side.",
        "",
        *HEADER,
        *_rows(pooled),
    ]
    return "\n".join(lines)


def holdout_markdown(holdout: HoldoutReport) -> str:
    """The full model and the full model plus the new trees on the held-out newest rows."""
    lines = [
        f"Held-out newest rows from {holdout.start.isoformat()}: {holdout.full.rows} rows, "
        "not boosted on.",
        "",
        *HEADER,
        *_rows(holdout.full, "full model"),
        _row("full + new trees", holdout.incremental.model),
    ]
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
    report: WalkForwardReport,
    holdout: HoldoutReport | None,
    ic_margin: float | None,
    pnl_margin: float | None,
    incremental_ic_tolerance: float | None,
) -> tuple[bool, str, dict[str, dg.MetadataValue]]:
    """Whether the registered model passes, why, and the evidence: the recipe beats both baselines
    out of sample by the margins, and its new trees hold up on the held-out newest rows."""
    pooled = report.pooled
    recipe_passed = beats_baselines(pooled, ic_margin, pnl_margin)
    trees_passed = new_trees_hold_up(holdout, incremental_ic_tolerance)
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
        "incremental_ic_tolerance": dg.MetadataValue.text(str(incremental_ic_tolerance)),
        "walk_forward_passed": dg.MetadataValue.bool(recipe_passed),
        "new_trees_passed": dg.MetadataValue.bool(trees_passed),
    }
    if holdout is None:
        reason += "; no newest-rows holdout to judge the new trees on"
    else:
        full_ic, boosted_ic = holdout.full.model.ic, holdout.incremental.model.ic
        reason += (
            f"; held-out newest rows: IC {boosted_ic:.4f} with the new trees vs {full_ic:.4f} "
            f"without (tolerance {incremental_ic_tolerance})"
        )
        metadata["holdout"] = dg.MetadataValue.md(holdout_markdown(holdout))
        metadata["holdout_full_ic"] = dg.MetadataValue.float(full_ic)
        metadata["holdout_incremental_ic"] = dg.MetadataValue.float(boosted_ic)
    metadata["reason"] = dg.MetadataValue.text(reason)
    return recipe_passed and trees_passed, reason, metadata
