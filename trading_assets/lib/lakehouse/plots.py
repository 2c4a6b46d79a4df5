"""Bar charts of the lakehouse layers for Dagster metadata."""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl

from trading_assets.lib.plots import figure_markdown


def bars_chart_markdown(bars: pl.DataFrame, title: str) -> str:
    """Close price over volume bars as a ~10 kB PNG in a Markdown image."""
    if bars.is_empty():
        return f"_{title}: no bars_"
    times = bars["bar_start"].to_list()
    figure, (price_axis, volume_axis) = plt.subplots(
        2, 1, figsize=(6, 2.8), dpi=72, sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    price_axis.plot(times, bars["close"].to_list(), linewidth=0.8)
    price_axis.set_title(title, fontsize=8)
    price_axis.tick_params(labelsize=6)
    volume_axis.bar(times, bars["volume"].to_list(), width=1 / 1440, color="grey")
    volume_axis.tick_params(labelsize=6)
    figure.autofmt_xdate()
    return figure_markdown(figure, title)
