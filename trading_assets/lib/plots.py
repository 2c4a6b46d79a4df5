"""Small PNG charts for Dagster metadata, embedded in Markdown as data URIs."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display in runs; must precede pyplot

from matplotlib.figure import Figure


def figure_markdown(figure: Figure, title: str) -> str:
    """The figure as a PNG Markdown image; the figure is closed afterwards."""
    import matplotlib.pyplot as plt

    try:
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"
