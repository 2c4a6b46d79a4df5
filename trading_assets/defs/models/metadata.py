"""Materialization and check metadata of the model assets: metrics tables and plots."""

import math

import dagster as dg

from trading_assets.lib.models import WalkForwardReport, beats_baselines
from trading_assets.lib.models.metrics import MAX_IC_P_VALUE, Comparison, Metrics
from trading_assets.lib.models.plots import importance_markdown, predicted_vs_realized_markdown
from trading_assets.lib.models.policy import BP, round_trip_cost
from trading_assets.lib.models.training import (
    NEW_TREES_Z,
    HoldoutReport,
    TrainedModel,
    new_trees_hold_up,
)

HEADER = [
    "| forecast | IC | IC p-value | hit rate | RMSE | P&L (after costs) | sides | turnover |",
    "|---|---|---|---|---|---|---|---|",
]
BASELINE_LABELS = {"zero": "zero", "last": "last return", "buy_hold": "buy & hold"}


def number_or_dash(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, or a dash for NaN."""
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _row(label: str, m: Metrics) -> str:
    return (
        f"| {label} | {m.ic:.4f} | {m.ic_p_value:.2g} | {number_or_dash(m.hit_rate, 4)} | "
        f"{number_or_dash(m.rmse, 6)} | {m.pnl:.6f} | {m.trades} | {m.turnover:.3f} |"
    )


def _rows(comparison: Comparison, model_name: str = "model") -> list[str]:
    """The model's row, then each baseline's on the same rows."""
    baselines = comparison.baselines
    return [
        _row(model_name, comparison.model),
        *(_row(BASELINE_LABELS[name], m) for name, m in baselines.items()),
    ]


def costs_line(comparison: Comparison) -> str:
    """The costs the P&L paid, and the round trip a prediction had to clear to trade."""
    trip = round_trip_cost(comparison.spread_bps, comparison.fee_bp) / BP
    return (
        f"Trades only where |predicted return| > round-trip cost 2 × (fee + spread / 2): "
        f"fee {comparison.fee_bp:g} bp per side, mean spread {comparison.spread_bps:.3g} bp "
        f"(round trip {trip:.3g} bp); P&L and the IC p-value on {comparison.pnl_rows} "
        "non-overlapping rows (one per horizon per symbol); turnover: sides per such row."
    )


def metrics_markdown(report: WalkForwardReport) -> str:
    """Pooled out-of-sample scores of the trading rule next to the baselines."""
    pooled = report.pooled
    lines = [
        f"Out of sample, {len(report.folds)} purged walk-forward folds "
        f"(embargo {report.embargo_s:g} s), {pooled.rows} rows.",
        costs_line(pooled),
        "",
        *HEADER,
        *_rows(pooled),
    ]
    return "\n".join(lines)


def ic_cost_line(holdout: HoldoutReport) -> str:
    """What the new trees cost in IC on the held-out rows, and how noisy that figure is."""
    return (
        f"IC cost of the new trees {holdout.ic_cost:.4f} (standard error "
        f"{holdout.ic_difference_se:.4f}, bootstrap over one-horizon blocks; the gate refuses "
        f"a cost above its tolerance by more than {NEW_TREES_Z:g} standard errors)"
    )


def holdout_markdown(holdout: HoldoutReport) -> str:
    """The full model and the full model plus the new trees on the held-out newest rows."""
    lines = [
        f"Held-out newest rows from {holdout.start.isoformat()}: {holdout.full.rows} rows, "
        "not boosted on.",
        ic_cost_line(holdout) + ".",
        costs_line(holdout.full),
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
        "model_ic_p_value": dg.MetadataValue.float(report.pooled.model.ic_p_value),
        "model_pnl": dg.MetadataValue.float(report.pooled.model.pnl),
        "model_turnover": dg.MetadataValue.float(report.pooled.model.turnover),
    }


def gate_metadata(
    report: WalkForwardReport,
    holdout: HoldoutReport | None,
    ic_margin: float | None,
    pnl_margin: float | None,
    incremental_ic_tolerance: float | None,
    max_ic_p_value: float | None = MAX_IC_P_VALUE,
) -> tuple[bool, str, dict[str, dg.MetadataValue]]:
    """Whether the registered model passes, why, and the evidence: out of sample, the trading
    rule beats every baseline by the margins with a significant IC, and the new trees hold up
    on the held-out newest rows."""
    pooled = report.pooled
    recipe_passed = beats_baselines(pooled, ic_margin, pnl_margin, max_ic_p_value)
    trees_passed = new_trees_hold_up(holdout, incremental_ic_tolerance)
    best_ic, best_pnl = pooled.best_baseline_ic, pooled.best_baseline_pnl
    model = pooled.model
    reason = (
        f"out-of-sample IC {model.ic:.4f} vs best baseline {best_ic:.4f} "
        f"(margin {ic_margin}); IC p-value {model.ic_p_value:.2g} on {pooled.pnl_rows} "
        f"non-overlapping rows (at most {max_ic_p_value}); after-cost P&L {model.pnl:.6f} vs "
        f"{best_pnl:.6f} (margin {pnl_margin}), turnover {model.turnover:.3f}"
    )
    metadata = {
        "metrics": dg.MetadataValue.md(metrics_markdown(report)),
        "model_ic": dg.MetadataValue.float(model.ic),
        "best_baseline_ic": dg.MetadataValue.float(best_ic),
        "model_ic_p_value": dg.MetadataValue.float(model.ic_p_value),
        "model_pnl": dg.MetadataValue.float(model.pnl),
        "best_baseline_pnl": dg.MetadataValue.float(best_pnl),
        "model_turnover": dg.MetadataValue.float(model.turnover),
        "ic_margin": dg.MetadataValue.text(str(ic_margin)),
        "pnl_margin": dg.MetadataValue.text(str(pnl_margin)),
        "max_ic_p_value": dg.MetadataValue.text(str(max_ic_p_value)),
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
            f"without (tolerance {incremental_ic_tolerance}); {ic_cost_line(holdout)}"
        )
        metadata["holdout"] = dg.MetadataValue.md(holdout_markdown(holdout))
        metadata["holdout_full_ic"] = dg.MetadataValue.float(full_ic)
        metadata["holdout_incremental_ic"] = dg.MetadataValue.float(boosted_ic)
        metadata["holdout_ic_difference_se"] = dg.MetadataValue.float(holdout.ic_difference_se)
    metadata["reason"] = dg.MetadataValue.text(reason)
    return recipe_passed and trees_passed, reason, metadata
