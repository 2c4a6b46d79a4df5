"""Materialization metadata of the backtest: its figures, the baselines table and the plots."""

import dagster as dg

from trading_assets.defs.models.metadata import number_or_dash
from trading_assets.defs.watermark import watermark_metadata
from trading_assets.lib.backtest.plots import daily_pnl_markdown, equity_markdown
from trading_assets.lib.backtest.report import BacktestSummary
from trading_assets.lib.backtest.version import VersionBacktest

BASELINE_LABELS = {"last_return": "last return", "buy_and_hold": "buy & hold"}
HEADER = [
    "| trader | P&L (quote) | return | Sharpe | max drawdown | turnover / day | fees | fills |",
    "|---|---|---|---|---|---|---|---|",
]


def _row(label: str, s: BacktestSummary) -> str:
    sharpe = number_or_dash(s.sharpe, 2)
    return (
        f"| {label} | {s.pnl:+.2f} | {100 * s.total_return:+.3f} % | {sharpe} | "
        f"{100 * s.max_drawdown:.3f} % | {s.turnover_per_day:.2f} | {s.fees:.2f} | {s.fills} |"
    )


def baselines_markdown(backtest: VersionBacktest) -> str:
    """The model and the gate's baselines on the same rows and fills (zero trades nothing)."""
    rows = [_row("model", backtest.summary), "| zero | +0.00 | +0.000 % | – | 0.000 % | 0.00 "
            "| 0.00 | 0 |"]  # fmt: skip
    rows += [_row(BASELINE_LABELS[n], s) for n, s in backtest.baselines.items()]
    return "\n".join([*HEADER, *rows])


def backtest_metadata(backtest: VersionBacktest, root: str) -> dict[str, dg.MetadataValue]:
    """Figures, the baselines, per-day P&L, fills by source and the plots of one backtest."""
    summary, result = backtest.summary, backtest.result
    title = f"version {backtest.version}"
    days = backtest.days()
    per_day = [f"| {day} | {pnl:+.2f} |" for day, pnl in days.iter_rows()]
    metadata: dict[str, dg.MetadataValue] = {
        "version": dg.MetadataValue.text(backtest.version),
        "outputs": dg.MetadataValue.path(f"{root}/version={backtest.version}"),
        "unseen_rows": dg.MetadataValue.int(backtest.rows),
        "pnl": dg.MetadataValue.float(summary.pnl),
        "total_return": dg.MetadataValue.float(summary.total_return),
        "sharpe": dg.MetadataValue.float(summary.sharpe),
        "max_drawdown": dg.MetadataValue.float(summary.max_drawdown),
        "turnover_per_day": dg.MetadataValue.float(summary.turnover_per_day),
        "fees": dg.MetadataValue.float(summary.fees),
        "fills": dg.MetadataValue.int(summary.fills),
        "fills_by_source": dg.MetadataValue.json(summary.fills_by_source),
        "orders_without_data": dg.MetadataValue.int(result.unfilled_orders),
        "risk_counters": dg.MetadataValue.json(result.counters),
        "pnl_per_day": dg.MetadataValue.md(
            "\n".join(["| day | P&L (quote) |", "|---|---|", *per_day])
        ),
        "baselines": dg.MetadataValue.md(baselines_markdown(backtest)),
        "equity": dg.MetadataValue.md(
            equity_markdown(result, backtest.baseline_results, f"{title}: equity")
        ),
        "daily_pnl": dg.MetadataValue.md(daily_pnl_markdown(result, f"{title}: P&L per day")),
    }
    if backtest.start is not None:
        metadata["period_start"] = dg.MetadataValue.timestamp(backtest.start)
    return metadata | watermark_metadata(backtest.end, "no rows after the version's training data")
