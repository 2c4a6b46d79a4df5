"""The landed-trades chain of some instruments, materialized by Dagster in a process of its own:
``python -m tests.venue_chain DAY INSTRUMENT...`` (raw_trades → bronze → silver, with the checks
a live pickup runs, → bars_1s → features per day × instrument partition, then feast_registry →
online_features).

The partitions' instruments are read from ``TRADING_INSTRUMENTS`` when the assets are imported,
as in a deployment; a test process has imported them with the default (Binance) list, so the
chain of other venues' instruments runs in a process whose environment lists them. Its resources
are the project's for that environment (:func:`~trading_assets.resources.build_resources`): the
stores live under ``TRADING_DATA_DIR`` and bronze reads the landing location the settings name.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_chain(
    day: dt.date, instruments: Sequence[str], env: Mapping[str, str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run :func:`materialize_chain` in a fresh process with ``env`` added to this one's."""
    return subprocess.run(
        [sys.executable, "-m", "tests.venue_chain", day.isoformat(), *instruments],
        cwd=REPO_ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout_s, check=False,
    )  # fmt: skip


def materialize_chain(day: dt.date, instruments: Sequence[str]) -> None:
    """Each instrument's day through the daily assets, then the registry and the online store
    (raises on the first failed run or failed check)."""
    import dagster as dg

    from trading_assets.defs.features.assets import feast_registry, features, online_features
    from trading_assets.defs.ingest.partitions import partition_key
    from trading_assets.defs.ingest.raw_trades import raw_trades
    from trading_assets.defs.lakehouse import checks
    from trading_assets.defs.lakehouse.assets import bars_1s, bronze_trades, silver_trades
    from trading_assets.resources import build_resources

    resources = build_resources()
    instance = dg.DagsterInstance.ephemeral()
    live_checks = [
        checks.no_duplicate_trade_ids,
        checks.time_never_goes_backwards,
        checks.trade_id_gaps,
        checks.no_price_spikes,
    ]
    daily = [raw_trades, bronze_trades, silver_trades, *live_checks, bars_1s, features]
    for instrument in instruments:
        key = partition_key(day, instrument)
        run = dg.materialize(daily, partition_key=key, resources=resources, instance=instance)
        failed = [e.check_name for e in run.get_asset_check_evaluations() if not e.passed]
        if failed:
            raise RuntimeError(f"{key}: checks failed: {failed}")
    serving = [feast_registry, online_features]
    dg.materialize(serving, resources=resources, instance=instance)


if __name__ == "__main__":
    materialize_chain(dt.date.fromisoformat(sys.argv[1]), sys.argv[2:])
