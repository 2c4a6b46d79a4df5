"""Lakehouse pipeline on one synthetic 2M-trade day: raw → bronze → silver → bars_1s → bars_1m.

The floor is polars' bare read of the same bulk file (unzip + ``pl.read_csv``). Each side runs in
its own child process so its peak RSS is its own. Targets: ≤ 10 s in total, ≤ 4× the read floor,
peak RSS ≤ 2 GB.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench.harness import peak_rss_mb, run_child

SYMBOL = "BTCUSDT"
TRADES_PER_DAY = 2_000_000


def pick_day(market, symbol: str, target: int) -> dt.date:
    """The day of early 2024 whose synthetic trade count is closest to ``target``."""
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(90)]
    return min(days, key=lambda day: abs(market.trade_count(symbol, day) - target))


def write_mirror(root: Path) -> tuple[dt.date, int, Path]:
    """Write the day's zip + CHECKSUM in data.binance.vision's layout under ``root``."""
    from streaming.simulator.synthetic import SyntheticMarket
    from trading_assets.lib.lakehouse.bulk import publish_to_mirror

    market = SyntheticMarket(trades_per_day=TRADES_PER_DAY)
    day = pick_day(market, SYMBOL, TRADES_PER_DAY)
    target = publish_to_mirror(root, SYMBOL, day, market.day_trades_csv_zip(SYMBOL, day))
    return day, market.trade_count(SYMBOL, day), target


def child_floor(zip_path: str) -> dict[str, float]:
    """Bare reads: stdlib unzip + pl.read_csv, and the same with the pipeline's ISA-L unzip."""
    import polars as pl
    from pyiceberg.io.pyarrow import PyArrowFileIO

    from trading_assets.lib.lakehouse.chunks import read_csv_member

    started = time.perf_counter()
    with zipfile.ZipFile(zip_path) as archive:
        csv_bytes = archive.read(archive.namelist()[0])
    frame = pl.read_csv(csv_bytes, has_header=False)
    elapsed = time.perf_counter() - started
    del csv_bytes, frame
    started = time.perf_counter()
    _, csv_bytes = read_csv_member(PyArrowFileIO(), Path(zip_path).as_uri())
    frame = pl.read_csv(csv_bytes, has_header=False)
    elapsed_isal = time.perf_counter() - started
    return {
        "read": elapsed,
        "read_isal": elapsed_isal,
        "rows": frame.height,
        "rss_mb": peak_rss_mb(),
    }


def child_pipeline(mirror: str, work: str, day_text: str) -> dict[str, float]:
    from trading_assets.lib.lakehouse import pipeline
    from trading_assets.lib.lakehouse.schemas import ALL_TABLES
    from trading_assets.lib.lakehouse.tables import open_catalog

    day = dt.date.fromisoformat(day_text)
    warehouse = Path(work) / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(
        "bench",
        {"type": "sql", "uri": f"sqlite:///{work}/catalog.db", "warehouse": f"file://{warehouse}"},
    )
    lake = pipeline.Lakehouse(catalog, f"file://{warehouse}/raw")
    for table in ALL_TABLES:  # creating the tables is a one-off, not a per-day cost
        lake.table(table)
    stages = {
        "raw": lambda: pipeline.fetch_raw(lake, f"file://{mirror}", SYMBOL, day),
        "bronze": lambda: pipeline.load_bronze(lake, SYMBOL, day),
        "silver": lambda: pipeline.refine_silver(lake, SYMBOL, day),
        "bars_1s": lambda: pipeline.build_bars_1s(lake, SYMBOL, day),
        "bars_1m": lambda: pipeline.build_bars_1m(lake, SYMBOL, day),
    }
    timings: dict[str, float] = {}
    results = {}
    for name, stage in stages.items():
        started = time.perf_counter()
        results[name] = stage()
        timings[name] = time.perf_counter() - started
    silver = results["silver"]
    timings["silver_rows"] = silver.silver.rows
    timings["quarantine_rows"] = silver.quarantine.rows
    timings["rss_mb"] = peak_rss_mb()
    return timings


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-lakehouse-") as tmp:
        root = Path(tmp)
        day, trades, zip_path = write_mirror(root / "mirror")
        size_mb = zip_path.stat().st_size / 1e6
        floor = run_child("bench.bench_pipeline", "floor", str(zip_path))
        pipe = run_child(
            "bench.bench_pipeline",
            "pipeline",
            str(root / "mirror"),
            str(root / "work"),
            day.isoformat(),
        )

    stages = ("raw", "bronze", "silver", "bars_1s", "bars_1m")
    total = sum(pipe[name] for name in stages)
    print(f"{SYMBOL} {day}: {trades:,} trades, zip {size_mb:.1f} MB")
    print(f"{'stage':<28}{'seconds':>10}")
    for name in stages:
        print(f"{name:<28}{pipe[name]:>10.2f}")
    print(f"{'total raw→bars':<28}{total:>10.2f}   target ≤ 10 s")
    print(f"{'floor: unzip + pl.read_csv':<28}{floor['read']:>10.2f}")
    print(f"{'ratio total / floor':<28}{total / floor['read']:>10.2f}×  target ≤ 4×")
    print(f"{'floor with ISA-L unzip':<28}{floor['read_isal']:>10.2f}")
    print(f"{'ratio total / that floor':<28}{total / floor['read_isal']:>10.2f}×")
    print(f"{'peak RSS pipeline (MB)':<28}{pipe['rss_mb']:>10.0f}   target ≤ 2048")
    print(f"{'peak RSS floor (MB)':<28}{floor['rss_mb']:>10.0f}")
    print(f"{'RSS ratio':<28}{pipe['rss_mb'] / floor['rss_mb']:>10.2f}×")
    print(
        f"rows: floor {int(floor['rows']):,}, silver {int(pipe['silver_rows']):,}, "
        f"quarantine {int(pipe['quarantine_rows']):,}"
    )


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    result = child_floor(*rest) if kind == "floor" else child_pipeline(*rest)
    print(json.dumps(result))
