"""Live model metrics: the sidecar's predictions log scored against the returns that followed.

Realized returns come from ``silver.bars_1s`` in Iceberg, not from the landed trades: they are
the bars the training labels are computed from (``features.batch.compute_labels``), so a live IC
is measured on the very return the walk-forward IC recorded with the version was; silver is
deduplicated and validated, and once the day's bulk file arrives its bars are the authoritative
ones; and a day is at most 86,400 rows per symbol instead of every trade. The cost is the pickup
lag (landed trades reach ``bars_1s`` within about a minute), which only delays maturity.

For a prediction at ``t`` (its ``timestamp``) and horizon ``h`` (60 s), ``close(x)`` is the close
of the newest 1 s bar that ended at or before ``x`` (``bar_start + 1 s <= x``; seconds without
trades carry the last close, as the label's dense grid does), and the realized return is
``ln(close(t + h) / close(t))``. A prediction is *matured* once its symbol's bars reach ``t + h``.

A prediction is a model *error* when its ``reason`` starts with :data:`MODEL_ERROR_REASON`: the
sidecar logs one (no trade, signal 0) instead of failing when a model cannot score.

Metrics per model version and role (definitions shared with the offline evaluation in
:mod:`trading_assets.lib.models.metrics`): matured count, live IC (Spearman of predicted vs
realized return), hit rate (sign agreement on non-zero realized returns), p50/p95 latency,
error rate; plus served-time ranges (which version served which role when).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from trading_assets.lib.lakehouse.landing import (
    MODEL_ERROR_REASON,
    OPEN_SUFFIX,
    PREDICTIONS_KIND,
    SEALED_SUFFIX,
    is_remote,
    list_segments,
    read_complete_lines,
    read_segments,
)
from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.lib.lakehouse.tables import read_partition
from trading_assets.lib.models.metrics import hit_rate, information_coefficient

NS = 1_000_000_000
BAR_NS = NS  # bars_1s
METRICS_FILE = "live_model_metrics.parquet"
RANGES_FILE = "served_ranges.parquet"

PREDICTION_SCHEMA = {
    "instrument": pl.String,
    "timestamp": pl.Int64,
    "model_version": pl.String,
    "role": pl.String,
    "predicted_return": pl.Float64,
    "latency_ms": pl.Float64,
    "fallback_level": pl.Int64,
    "reason": pl.String,
}
# A landed prediction names its instrument id in ``symbol`` (the Prediction record's field).
_LANDED_SCHEMA = {"symbol" if k == "instrument" else k: v for k, v in PREDICTION_SCHEMA.items()}
_UTC = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class RoleMetrics:
    """One model version's live record in one role over some span of time."""

    model_version: str
    role: str
    predictions: int
    matured: int
    errors: int
    ic: float | None  # None below two matured predictions
    hit_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    first_ns: int | None
    last_ns: int | None

    @property
    def error_rate(self) -> float:
        """Errors per prediction served (0 when none was served)."""
        return self.errors / self.predictions if self.predictions else 0.0


def _segment_lines(location: str) -> bytes:
    try:
        return read_complete_lines(location)
    except FileNotFoundError:
        if is_remote(location) or not location.endswith(OPEN_SUFFIX):
            return b""  # removed since it was listed
        # Sealed between listing and reading: the same records now sit under the sealed name.
        sealed = location.removesuffix(OPEN_SUFFIX) + SEALED_SUFFIX
        with contextlib.suppress(FileNotFoundError):
            return read_complete_lines(sealed)
        return b""


def read_predictions(
    root: Path | str, start_ns: int, end_ns: int, symbols: list[str] | None = None
) -> pl.DataFrame:
    """Landed predictions with ``start_ns <= timestamp < end_ns`` that a model served.

    ``root`` is the landing location (a folder, or the ``s3://`` prefix sealed segments are
    shipped to). Open segments in a landing folder are read too (up to their last complete
    line): the sidecar fsyncs them every second, and the newest predictions are the ones about
    to mature. Records with no model (``model_version`` empty: nothing loaded) are left out.
    """
    first_day = dt.datetime.fromtimestamp(start_ns / NS, dt.UTC).date()
    # A segment's folder may be dated by when it was written rather than by the predictions'
    # own time, so one day past the window is read as well (the timestamp filter decides).
    last_day = dt.datetime.fromtimestamp(end_ns / NS, dt.UTC).date() + dt.timedelta(days=1)
    wanted = {s.upper() for s in symbols} if symbols else None
    segments = [
        segment
        for segment in list_segments(
            root, PREDICTIONS_KIND, days=(first_day, last_day), include_open=True
        )
        if wanted is None or segment.instrument in wanted
    ]
    frames = [
        pl.read_ndjson(lines, schema=_LANDED_SCHEMA).rename({"symbol": "instrument"})
        for lines in read_segments(segments, _segment_lines)
        if lines
    ]
    if not frames:
        return pl.DataFrame(schema=PREDICTION_SCHEMA)
    return (
        pl.concat(frames)
        .filter(
            pl.col("timestamp").is_between(start_ns, end_ns, closed="left"),
            pl.col("model_version") != "",
        )
        .sort("timestamp")
    )


def read_closes(lake: Lakehouse, symbols: list[str], start_ns: int, end_ns: int) -> pl.DataFrame:
    """``symbol, bar_end (ns), close`` of every 1 s bar ending in ``[start_ns - 1 day, end_ns]``.

    The day before is included so a prediction just after midnight finds its starting close.
    """
    first = dt.datetime.fromtimestamp(start_ns / NS, dt.UTC).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end_ns / NS, dt.UTC).date()
    table = lake.table(BARS_1S_TABLE)
    frames = []
    for symbol in symbols:
        day = first
        while day <= last:
            bars = read_partition(table, day, symbol, ("instrument", "bar_start", "close"))
            frames.append(bars)
            day += dt.timedelta(days=1)
    schema = {"instrument": pl.String, "bar_end": pl.Int64, "close": pl.Float64}
    if not frames:
        return pl.DataFrame(schema=schema)
    return (
        pl.concat(frames)
        .select(
            "instrument",
            (pl.col("bar_start").cast(_UTC).dt.epoch("ns") + BAR_NS).alias("bar_end"),
            pl.col("close").cast(pl.Float64),
        )
        .filter(pl.col("bar_end") <= end_ns)
        .sort("bar_end")
    )


def score_predictions(
    predictions: pl.DataFrame, closes: pl.DataFrame, horizon_s: int
) -> pl.DataFrame:
    """Predictions plus ``is_error``, ``matured`` and ``realized_return`` (null unless matured)."""
    horizon_ns = horizon_s * NS
    watermarks = closes.group_by("instrument").agg(pl.col("bar_end").max().alias("bars_until"))
    start = closes.rename({"bar_end": "start_bar", "close": "close_start"})
    end = closes.rename({"bar_end": "end_bar", "close": "close_end"})
    frame = (
        predictions.with_columns(
            is_error=pl.col("reason").fill_null("").str.starts_with(MODEL_ERROR_REASON),
            horizon_end=pl.col("timestamp") + horizon_ns,
        )
        # Both sides are sorted on the as-of key; polars cannot check that per group and warns.
        .sort("timestamp")
        .join_asof(
            start,
            left_on="timestamp",
            right_on="start_bar",
            by="instrument",
            check_sortedness=False,
        )
        .sort("horizon_end")
        .join_asof(
            end, left_on="horizon_end", right_on="end_bar", by="instrument", check_sortedness=False
        )
        .join(watermarks, on="instrument", how="left")
    )
    matured = (
        (pl.col("horizon_end") <= pl.col("bars_until"))
        & pl.col("close_start").is_not_null()
        & ~pl.col("is_error")
    ).fill_null(False)
    return (
        frame.with_columns(matured=matured)
        .with_columns(
            realized_return=pl.when("matured").then(
                (pl.col("close_end") / pl.col("close_start")).log()
            )
        )
        .drop("start_bar", "end_bar", "close_start", "close_end", "bars_until", "horizon_end")
        .sort("timestamp")
    )


def _quantile(values: pl.Series, q: float) -> float | None:
    value = values.quantile(q, interpolation="linear") if values.len() else None
    return None if value is None or math.isnan(value) else float(value)  # type: ignore[arg-type]


def role_metrics(
    scored: pl.DataFrame,
    version: str,
    role: str,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> RoleMetrics:
    """The metrics of ``version`` serving ``role`` over ``[since_ns, until_ns)`` of a scored log."""
    rows = scored.filter(pl.col("model_version") == version, pl.col("role") == role)
    if since_ns is not None:
        rows = rows.filter(pl.col("timestamp") >= since_ns)
    if until_ns is not None:
        rows = rows.filter(pl.col("timestamp") < until_ns)
    matured = rows.filter("matured")
    predicted = matured["predicted_return"].to_numpy()
    realized = matured["realized_return"].to_numpy()
    hits = hit_rate(predicted, realized) if matured.height else math.nan
    served = rows.filter(~pl.col("is_error"))["latency_ms"]
    return RoleMetrics(
        model_version=version,
        role=role,
        predictions=rows.height,
        matured=matured.height,
        errors=int(rows["is_error"].sum()),
        ic=information_coefficient(predicted, realized) if matured.height >= 2 else None,
        hit_rate=None if math.isnan(hits) else hits,
        latency_p50_ms=_quantile(served, 0.5),
        latency_p95_ms=_quantile(served, 0.95),
        first_ns=rows["timestamp"].min() if rows.height else None,  # type: ignore[arg-type]
        last_ns=rows["timestamp"].max() if rows.height else None,  # type: ignore[arg-type]
    )


def summarize(scored: pl.DataFrame) -> pl.DataFrame:
    """One row per (model_version, role): counts, IC, hit rate, latency, error rate, span."""
    pairs = scored.select("model_version", "role").unique().sort("role", "model_version").rows()
    rows = []
    for version, role in pairs:
        m = role_metrics(scored, version, role)
        rows.append(
            {
                "model_version": version,
                "role": role,
                "predictions": m.predictions,
                "matured": m.matured,
                "errors": m.errors,
                "error_rate": m.error_rate,
                "ic": m.ic,
                "hit_rate": m.hit_rate,
                "latency_p50_ms": m.latency_p50_ms,
                "latency_p95_ms": m.latency_p95_ms,
                "first_served_ns": m.first_ns,
                "last_served_ns": m.last_ns,
            }
        )
    schema = {
        "model_version": pl.String,
        "role": pl.String,
        "predictions": pl.Int64,
        "matured": pl.Int64,
        "errors": pl.Int64,
        "error_rate": pl.Float64,
        "ic": pl.Float64,
        "hit_rate": pl.Float64,
        "latency_p50_ms": pl.Float64,
        "latency_p95_ms": pl.Float64,
        "first_served_ns": pl.Int64,
        "last_served_ns": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def served_ranges(predictions: pl.DataFrame) -> pl.DataFrame:
    """Contiguous spans in which one version served one role: a version that returns (after a
    rollback, say) gets a new span, so the spans read as the role's history."""
    return (
        predictions.sort("role", "timestamp")
        .with_columns(
            span=(pl.col("model_version") != pl.col("model_version").shift(1))
            .fill_null(True)
            .cum_sum()
            .over("role")
        )
        .group_by("role", "span", maintain_order=True)
        .agg(
            pl.col("model_version").first(),
            pl.col("timestamp").min().alias("start_ns"),
            pl.col("timestamp").max().alias("end_ns"),
            pl.len().alias("predictions"),
        )
        .drop("span")
        .sort("role", "start_ns")
    )


@dataclass(frozen=True)
class LiveMetricsReport:
    """The scored window: per version × role metrics, served spans, and the event-time marks."""

    scored: pl.DataFrame
    metrics: pl.DataFrame
    ranges: pl.DataFrame
    window_start_ns: int
    window_end_ns: int

    @property
    def watermark_ns(self) -> int | None:
        """Newest prediction whose outcome is known (the event time the metrics reach)."""
        matured = self.scored.filter("matured")
        return int(matured["timestamp"].max()) if matured.height else None  # type: ignore[arg-type]


def scored_window(
    lake: Lakehouse, landing_root: Path | str, start_ns: int, end_ns: int, horizon_s: int
) -> pl.DataFrame:
    """Predictions landed in ``[start_ns, end_ns)``, scored against ``bars_1s`` up to ``end_ns``."""
    predictions = read_predictions(landing_root, start_ns, end_ns)
    symbols = sorted(predictions["instrument"].unique().to_list())
    closes = read_closes(lake, symbols, start_ns, end_ns)
    return score_predictions(predictions, closes, horizon_s)


def evaluate_live(
    lake: Lakehouse, landing_root: Path | str, end_ns: int, window_s: float, horizon_s: int
) -> LiveMetricsReport:
    """Live metrics of every version and role over the ``window_s`` seconds before ``end_ns``."""
    start_ns = end_ns - int(window_s * NS)
    scored = scored_window(lake, landing_root, start_ns, end_ns, horizon_s)
    return LiveMetricsReport(scored, summarize(scored), served_ranges(scored), start_ns, end_ns)


def write_report(report: LiveMetricsReport, folder: Path) -> tuple[Path, Path]:
    """The metrics and served spans as Parquet under ``folder``, each replaced atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame, name in ((report.metrics, METRICS_FILE), (report.ranges, RANGES_FILE)):
        path = folder / name
        partial = path.with_suffix(".parquet.partial")
        frame.write_parquet(partial)
        os.replace(partial, path)
        paths.append(path)
    return paths[0], paths[1]


def served_timeline_markdown(ranges: pl.DataFrame, metrics: pl.DataFrame, title: str) -> str:
    """Which version served which role when (one bar per span, labelled with the version and
    its live IC in that role)."""
    import matplotlib.pyplot as plt

    from trading_assets.lib.plots import figure_markdown

    if ranges.is_empty():
        return f"_{title}: no predictions in the window_"
    ic = {(v, r): value for v, r, value in metrics.select("model_version", "role", "ic").rows()}
    roles = ["shadow", "canary", "champion"]
    roles += sorted(set(ranges["role"].to_list()) - set(roles))
    figure, axis = plt.subplots(figsize=(6, 0.45 * len(roles) + 1.0), dpi=72)
    colors = plt.get_cmap("tab10")
    origin = int(ranges["start_ns"].min())  # type: ignore[arg-type]
    for role, version, start_ns, end_ns, _ in ranges.iter_rows():
        left = (start_ns - origin) / NS / 60
        width = max((end_ns - start_ns) / NS / 60, 1 / 60)
        y = roles.index(role)
        color = colors(zlib.crc32(version.encode()) % 10)
        axis.barh(y, width, left=left, height=0.6, color=color, alpha=0.8)
        value = ic.get((version, role))
        label = f"v{version}" + ("" if value is None else f" IC {value:+.3f}")
        axis.text(left, y, f" {label}", va="center", fontsize=6)
    start = dt.datetime.fromtimestamp(origin / NS, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    axis.set_xlabel(f"minutes since {start} UTC", fontsize=7)
    axis.set_yticks(range(len(roles)), roles)
    axis.set_title(title, fontsize=8)
    axis.tick_params(labelsize=6)
    return figure_markdown(figure, title)
