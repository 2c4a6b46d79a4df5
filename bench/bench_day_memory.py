"""Peak memory of a lakehouse day, stage by stage, for a 2M-trade and an 8M-trade day.

Every stage runs in a fresh child process on the same warehouse, so its peak RSS (``VmHWM``) is
its own, imports included, and stages do not mask each other. The limit is a pod's 2 GB per run.
The named peer is the unchunked path, measured on the 2M day in the same run: the same code with
one chunk the size of the day (``chunk_rows`` = 10⁹), which holds a whole day at each stage as
the code before chunking did. ``whole run`` is every stage in one process, as a
``lakehouse_daily`` run executes them (Dagster's in-process executor); ``idle`` is a process with
the libraries imported and the catalog open, and ``dagster idle`` one that has also loaded the
code location, the floor of a real run process.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import peak_rss_mb, run_child

SYMBOL = "BTCUSDT"
DAYS = {"2M": 2_000_000, "8M": 8_000_000}
LIMIT_MB = 2048
UNCHUNKED = 10**9
STAGES = (
    "raw_trades",
    "bronze",
    "silver + quarantine",
    "silver checks",
    "bars_1s",
    "bars_1m",
    "features",
    "whole run",
)
FLOORS = ("idle", "dagster idle")


def write_mirror(root: str, trades_per_day: str) -> dict[str, float | str]:
    """Publish the synthetic day nearest ``trades_per_day`` trades under ``root``."""
    from bench.bench_pipeline import pick_day
    from streaming.simulator.synthetic import SyntheticMarket
    from trading_assets.lib.lakehouse.bulk import publish_to_mirror

    market = SyntheticMarket(trades_per_day=int(trades_per_day))
    day = pick_day(market, SYMBOL, int(trades_per_day))
    target = publish_to_mirror(Path(root), SYMBOL, day, market.day_trades_csv_zip(SYMBOL, day))
    return {
        "day": day.isoformat(),
        "trades": market.trade_count(SYMBOL, day),
        "zip_mb": target.stat().st_size / 1e6,
    }


def _lakehouse(work: str, chunk_rows: int):
    from trading_assets.lib.lakehouse import pipeline
    from trading_assets.lib.lakehouse.schemas import ALL_TABLES
    from trading_assets.lib.lakehouse.tables import open_catalog

    warehouse = Path(work) / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(
        "bench",
        {"type": "sql", "uri": f"sqlite:///{work}/catalog.db", "warehouse": warehouse.as_uri()},
    )
    lake = pipeline.Lakehouse(catalog, f"{warehouse.as_uri()}/raw", chunk_rows=chunk_rows)
    for table in ALL_TABLES:  # creating the tables is a one-off, not a per-day cost
        lake.table(table)
    return lake


def _stage_calls(mirror: str, day: dt.date) -> dict[str, Callable[..., object]]:
    from trading_assets.lib.feature_store.gold import build_gold_features
    from trading_assets.lib.lakehouse import pipeline, quality

    def raw(lake) -> None:
        stored = pipeline.fetch_raw(lake, f"file://{mirror}", SYMBOL, day)
        pipeline.raw_event_range(lake, stored.raw_uri)  # what the raw_trades asset reports

    def checks(lake) -> None:
        # What the five asset checks of silver_trades read and compute (defs/lakehouse/checks).
        pipeline.reconcile(lake, SYMBOL, day)
        quality.duplicate_trade_ids(pipeline.read_silver(lake, SYMBOL, day, ("trade_id",)))
        columns = ("trade_id", "event_time")
        quality.time_backwards(pipeline.read_silver(lake, SYMBOL, day, columns))
        quality.trade_id_gaps(pipeline.read_silver(lake, SYMBOL, day, ("trade_id",))["trade_id"])
        quality.price_spikes(pipeline.read_silver(lake, SYMBOL, day, ("trade_id", "price")))

    calls: dict[str, Callable[..., object]] = {
        "idle": lambda lake: None,
        "dagster idle": lambda lake: _load_code_location(),
        "raw_trades": raw,
        "bronze": lambda lake: pipeline.load_bronze(lake, SYMBOL, day),
        "silver + quarantine": lambda lake: pipeline.refine_silver(lake, SYMBOL, day),
        "silver checks": checks,
        "bars_1s": lambda lake: pipeline.build_bars_1s(lake, SYMBOL, day),
        "bars_1m": lambda lake: pipeline.build_bars_1m(lake, SYMBOL, day),
        "features": lambda lake: build_gold_features(lake, SYMBOL, day),
    }
    calls["whole run"] = lambda lake: _whole_run(lake, calls)
    return calls


def _load_code_location() -> None:
    from trading_assets.definitions import defs

    defs()


def _whole_run(lake, calls: dict[str, Callable[..., object]]) -> None:
    """Every stage in this one process."""
    for name in STAGES[:-1]:
        calls[name](lake)


def child_stage(stage: str, mirror: str, work: str, day_text: str, chunk_rows: str) -> dict:
    lake = _lakehouse(work, int(chunk_rows))
    call = _stage_calls(mirror, dt.date.fromisoformat(day_text))[stage]
    started = time.perf_counter()
    call(lake)
    return {"seconds": time.perf_counter() - started, "rss_mb": peak_rss_mb()}


def _measure(tmp: Path, label: str, trades: int, chunk_rows: int) -> dict:
    mirror, work = tmp / f"mirror-{label}", tmp / f"work-{label}-{chunk_rows}"
    if not mirror.exists():
        run_child("bench.bench_day_memory", "mirror", str(mirror), str(trades))
    facts = json.loads((mirror / "facts.json").read_text())
    results = {}
    for stage in (*FLOORS, *STAGES[:-1]):
        args = (stage, str(mirror), str(work), facts["day"], str(chunk_rows))
        results[stage] = run_child("bench.bench_day_memory", "stage", *args)
    args = ("whole run", str(mirror), str(tmp / f"whole-{label}-{chunk_rows}"), facts["day"])
    results["whole run"] = run_child("bench.bench_day_memory", "stage", *args, str(chunk_rows))
    return {"facts": facts, "stages": results}


def main() -> None:
    from trading_assets.lib.lakehouse.chunks import CHUNK_ROWS

    with tempfile.TemporaryDirectory(prefix="bench-day-memory-") as tmp:
        root = Path(tmp)
        peer = _measure(root, "2M", DAYS["2M"], UNCHUNKED)
        runs = {label: _measure(root, label, trades, CHUNK_ROWS) for label, trades in DAYS.items()}
    print(
        f"{SYMBOL}: 2M day {runs['2M']['facts']['trades']:,} trades "
        f"({runs['2M']['facts']['zip_mb']:.0f} MB zip), 8M day "
        f"{runs['8M']['facts']['trades']:,} trades ({runs['8M']['facts']['zip_mb']:.0f} MB zip); "
        f"chunks of {CHUNK_ROWS:,} rows; peak RSS per stage process (MB), limit {LIMIT_MB}"
    )
    header = f"{'stage':<30}{'2M one chunk':>14}{'2M chunked':>12}{'8M chunked':>12}"
    print(f"{header}{'8M ≤ limit':>12}{'2M s one/chunked':>18}{'8M s':>8}")
    for stage in (*FLOORS, *STAGES):
        one = peer["stages"][stage]
        two, eight = (runs[label]["stages"][stage] for label in DAYS)
        fits = "yes" if eight["rss_mb"] <= LIMIT_MB else "NO"
        seconds = f"{one['seconds']:.1f} / {two['seconds']:.1f}"
        print(
            f"{stage:<30}{one['rss_mb']:>14.0f}{two['rss_mb']:>12.0f}{eight['rss_mb']:>12.0f}"
            f"{fits:>12}{seconds:>18}{eight['seconds']:>8.1f}"
        )


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    if kind == "mirror":
        facts = write_mirror(*rest)
        (Path(rest[0]) / "facts.json").write_text(json.dumps(facts))
        print(json.dumps(facts))
    else:
        print(json.dumps(child_stage(*rest)))
