"""Charts of a model evaluation for Dagster metadata: predicted vs realized, importance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from trading_assets.lib.plots import figure_markdown

BINS = 10


def predicted_vs_realized_markdown(
    predicted: Sequence[float], realized: Sequence[float], title: str
) -> str:
    """Out-of-sample forecasts against realized returns, with the mean realized return per
    forecast decile: a useful model's decile means rise from left to right."""
    if len(predicted) < BINS:
        return f"_{title}: too few out-of-sample rows to plot_"
    p, r = np.asarray(predicted, np.float64), np.asarray(realized, np.float64)
    edges = np.quantile(p, np.linspace(0, 1, BINS + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, BINS - 1)
    centers = [p[which == b].mean() for b in range(BINS) if (which == b).any()]
    means = [r[which == b].mean() for b in range(BINS) if (which == b).any()]
    figure, axis = plt.subplots(figsize=(4.5, 3.2), dpi=72)
    axis.scatter(p * 1e4, r * 1e4, s=3, alpha=0.25, color="grey", label="rows")
    axis.plot(np.asarray(centers) * 1e4, np.asarray(means) * 1e4, "o-", label="decile mean")
    axis.axhline(0, linewidth=0.5, color="black")
    axis.axvline(0, linewidth=0.5, color="black")
    axis.set_xlabel("predicted return (bp)", fontsize=7)
    axis.set_ylabel("realized return (bp)", fontsize=7)
    axis.set_title(title, fontsize=8)
    axis.tick_params(labelsize=6)
    axis.legend(fontsize=6)
    return figure_markdown(figure, title)


def importance_markdown(gains: Mapping[str, float], title: str, top: int = 15) -> str:
    """Horizontal bars of each feature's share of the total split gain (top ``top``)."""
    ranked = sorted(gains.items(), key=lambda kv: kv[1], reverse=True)[:top]
    total = sum(gains.values()) or 1.0
    names = [name for name, _ in reversed(ranked)]
    shares = [100 * gain / total for _, gain in reversed(ranked)]
    figure, axis = plt.subplots(figsize=(4.5, 0.2 * len(names) + 0.8), dpi=72)
    axis.barh(names, shares)
    axis.set_xlabel("share of total gain (%)", fontsize=7)
    axis.set_title(title, fontsize=8)
    axis.tick_params(labelsize=6)
    return figure_markdown(figure, title)
