"""Serving-process memory at fallback level 4, with the sidecar's worker-process silver pull and,
as the floor it replaced, the same pull and recomputation inside the serving process.

Parent side (:func:`measure_silver_rss`): one day of the simulator's bulk history (600k BTCUSDT
trades) goes raw → bronze → silver on a tmp sqlite Iceberg catalog laid out as ``make run``'s
local one (``<data>/iceberg/iceberg_catalog.db``). Child side (``python -m bench.sidecar_silver
--data D --mode worker|in-process``): one :class:`Sidecar` on that data root with the embedded
online store and no model, whose controller has nothing online or live, so its decision at noon
is level 4 from the last 20 minutes of silver. It prints one JSON line: the process's peak RSS
(``VmHWM``) after start and after that decision.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import peak_rss_mb, run_child

INSTRUMENT = "BINANCE:BTCUSDT"
DAY = dt.date(2024, 3, 1)
TRADES_PER_DAY = 600_000
MODES = ("worker", "in-process")


def local_lake(data: Path) -> Any:
    """The lakehouse of ``make run``'s local catalog under ``data/iceberg`` (made if missing)."""
    from trading_assets.lib.lakehouse.pipeline import Lakehouse
    from trading_assets.lib.lakehouse.tables import open_catalog
    from trading_assets.lib.settings import local_catalog

    (data / "iceberg" / "warehouse").mkdir(parents=True, exist_ok=True)
    uri, warehouse = local_catalog(data / "iceberg")
    catalog = open_catalog("trading", {"type": "sql", "uri": uri, "warehouse": warehouse})
    return Lakehouse(catalog, f"{warehouse}/raw")


def build_silver_day(data: Path) -> None:
    """A silver day under ``data/iceberg``, as the Dagster assets of ``make run`` leave it."""
    from tests.lakehouse_days import simulated_silver_day

    simulated_silver_day(local_lake(data), INSTRUMENT, DAY, seed=3, trades_per_day=TRADES_PER_DAY)


def measure_silver_rss(work: Path) -> dict[str, dict[str, Any]]:
    """Per mode, the child sidecar's peak RSS after start and after its level-4 decision."""
    data = work / "data"
    build_silver_day(data)
    return {mode: run_child("bench.sidecar_silver", "--data", str(data), "--mode", mode)
            for mode in MODES}  # fmt: skip


def _level_4_decision(data: Path, mode: str) -> dict[str, Any]:
    from streaming.app import Sidecar
    from streaming.config import SidecarConfig
    from streaming.fallback import FallbackLevel

    config = SidecarConfig(
        instruments=(INSTRUMENT,), ws_base_url="ws://unused", rest_base_url="http://unused",
        data_root=data, tracking_uri=None,
    )  # fmt: skip
    sidecar = Sidecar(config)
    if mode == "in-process":  # the floor: the source the controller took before the worker
        from streaming.fallback import IcebergSilverMicrobatch
        from streaming.prefetched_silver import PrefetchedSilver

        source = PrefetchedSilver(IcebergSilverMicrobatch(local_lake(data)))
        sidecar.silver = sidecar.controller.silver = source
    started_mb = peak_rss_mb()
    assert sidecar.silver is not None
    now_ns = int(dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC).timestamp()) * 10**9
    lookback_ns = round(sidecar.controller.budgets.silver_lookback_s * 1e9)
    sidecar.silver.prefetch(INSTRUMENT, now_ns - lookback_ns, now_ns)
    if not sidecar.silver.wait_fetched(INSTRUMENT, 300):
        raise RuntimeError("the silver pull did not finish in 300 s")
    decision = sidecar.controller.decide(INSTRUMENT, now_ns)
    if decision.level is not FallbackLevel.SILVER:
        raise RuntimeError(f"expected a level 4 decision, got: {decision.reason}")
    return {"started_mb": started_mb, "after_mb": peak_rss_mb(), "reason": decision.reason}


def main(argv: Sequence[str] | None = None) -> None:
    """Child entry point: one level-4 decision, its peak RSS figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.sidecar_silver")
    parser.add_argument("--data", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(_level_4_decision(Path(args.data), args.mode)))


def standalone() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-silver-") as tmp:
        return measure_silver_rss(Path(tmp))


if __name__ == "__main__":
    main(sys.argv[1:])
