"""``make run HISTORY_DAYS=1`` on the default synthetic market: the first gated prediction, then
the champion over the next 30 minutes.

The run is a throwaway copy of the repository (see :mod:`bench.system_run`: fresh state, free
loopback ports), on the simulator's default market, whose planted edge
(:mod:`streaming.simulator.latent`) gives the system something true to find.

1. **First gated prediction**: from ``make run`` to ``/predictions/latest`` holding a prediction
   of a version whose evaluation gate passed (MLflow tag ``gate.beats_baselines = passed``).
   Target: 120 s on the 2-core development VM.
2. **Champion stability**: for ``BENCH_STABILITY_S`` (1,800 s) after that, every
   ``SAMPLE_S``: which version holds @champion, whether a model's prediction is served, and
   whether it trades. Rollbacks and withdrawals are counted from the versions' rollout status.
   Promotions of later challengers (through @shadow and @canary) are not instability; a
   turned-down champion, or a stretch with no model serving, is.
3. **Live vs offline**: the rollout's live metrics (``live_model_metrics``, scored against
   ``bars_1s``) for each champion, next to its walk-forward IC recorded in MLflow. Live
   predictions come every second with a 60 s horizon, so they overlap: the standard error shown
   counts one independent observation per horizon (``1 / sqrt(matured / 60)``).
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from bench.harness import REPO_ROOT
from bench.system_run import RunningSystem, copy_worktree, running_system, wait_for

HISTORY_DAYS = 1
FIRST_PREDICTION_TIMEOUT_S = 900
TARGET_FIRST_S = 120
SAMPLE_S = 5.0
HORIZON_S = 60
GATE_TAG = "gate.beats_baselines"
TURNED_DOWN = {"rolled_back", "withdrawn"}


def _tags(version: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in version.get("tags", [])}


def gated_prediction(system: RunningSystem) -> tuple[float, dict[str, Any]] | None:
    """The first served prediction whose version passed the gate, with when it was seen."""
    modelled = [p for p in system.latest_predictions().values() if p.get("model_version")]
    if not modelled:
        return None
    passed = {v["version"] for v in system.model_versions() if _tags(v).get(GATE_TAG) == "passed"}
    gated = [p for p in modelled if str(p["model_version"]) in passed]
    return (time.time(), gated[0]) if gated else None


def version_metric(system: RunningSystem, version: dict[str, Any], key: str) -> float | None:
    """A metric of the version's training run (``wf_model_ic`` and the like)."""
    body = system._get_json(system._mlflow_url("runs/get"), run_id=version.get("run_id", ""))
    metrics = body.get("run", {}).get("data", {}).get("metrics", []) if body else []
    values = [m["value"] for m in metrics if m["key"] == key]
    return float(values[0]) if values else None


def sample_stability(system: RunningSystem, seconds: float) -> dict[str, Any]:
    """Poll the champion and the served predictions for ``seconds``."""
    champions: list[str] = []
    samples = served = trading = 0
    seen_predictions: set[tuple[str, int]] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and system.alive():
        champion = system.version_by_alias("champion")
        champions.append("" if champion is None else str(champion["version"]))
        for prediction in system.latest_predictions().values():
            key = (prediction["symbol"], int(prediction["timestamp"]))
            if key in seen_predictions:
                continue
            seen_predictions.add(key)
            samples += 1
            served += bool(prediction.get("model_version"))
            trading += bool(prediction.get("should_trade"))
        system.remember_processes()
        time.sleep(SAMPLE_S)
    versions = system.model_versions()
    statuses = {v["version"]: _tags(v).get("rollout.status", "") for v in versions}
    return {
        "champions": champions,
        "samples": samples,
        "served": served,
        "trading": trading,
        "turned_down": sorted((v for v, s in statuses.items() if s in TURNED_DOWN), key=int),
        "versions": versions,
    }


def live_metrics(root: Path) -> pl.DataFrame | None:
    found = sorted(root.glob("dagster_home/data/**/live_model_metrics.parquet"))
    return pl.read_parquet(found[0]) if found else None


def fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4g}{unit}"


def report(system: RunningSystem, first_s: float | None, stability: dict[str, Any]) -> None:
    seconds = float(os.environ.get("BENCH_STABILITY_S", "1800"))
    champions = stability["champions"]
    held = [c for c in champions if c]
    changes = sum(1 for a, b in itertools.pairwise(champions) if a != b)
    rows = [
        ("1. make run → first gated prediction", fmt(first_s, " s"), f"≤ {TARGET_FIRST_S} s"),
        (
            f"2. samples with a @champion over {seconds:.0f} s",
            f"{len(held)}/{len(champions)}",
            "all",
        ),
        ("   @champion changes (promotions included)", str(changes), ""),
        (
            "   champions turned down (rolled back, withdrawn)",
            str(stability["turned_down"]),
            "none",
        ),
        (
            "   predictions seen served by a model",
            f"{stability['served']}/{stability['samples']}",
            "",
        ),
        ("   ... with should_trade true", f"{stability['trading']}/{stability['samples']}", "> 0"),
    ]
    metrics = live_metrics(system.root)
    by_number = {v["version"]: v for v in stability["versions"]}
    for number in dict.fromkeys(held):
        offline = version_metric(system, by_number.get(number, {}), "wf_model_ic")
        live = None
        if metrics is not None and metrics.height:
            mine = metrics.filter(
                (pl.col("model_version") == number) & (pl.col("role") == "champion")
            )
            live = mine.row(0, named=True) if mine.height else None
        if live is None or live.get("ic") is None:
            rows.append(
                (f"3. v{number}: live IC vs walk-forward IC", "no matured record", fmt(offline))
            )
            continue
        se = 1 / math.sqrt(max(live["matured"] / HORIZON_S, 1))
        agree = offline is not None and abs(live["ic"] - offline) <= 2 * se
        rows.append(
            (
                f"3. v{number}: live IC ({live['matured']} matured) vs walk-forward IC",
                f"{live['ic']:.4f} ± {se:.3f} vs {fmt(offline)}",
                "agree within 2 SE" if agree else "disagree",
            )
        )
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>28}  {target}")


def main() -> None:
    seconds = float(os.environ.get("BENCH_STABILITY_S", "1800"))
    with tempfile.TemporaryDirectory(prefix="bench-champion-") as tmp:
        root = Path(tmp)
        copy_worktree(REPO_ROOT, root)
        with running_system(root, {}, HISTORY_DAYS) as system:
            found = wait_for(system, lambda: gated_prediction(system), FIRST_PREDICTION_TIMEOUT_S)
            first_s = None if found is None else found[0] - system.started_s
            if found is None:
                print("no gated prediction: " + system.log_tail("[bootstrap]", 3))
                stability: dict[str, Any] = {
                    "champions": [], "samples": 0, "served": 0, "trading": 0,
                    "turned_down": [], "versions": [],
                }  # fmt: skip
            else:
                stability = sample_stability(system, seconds)
            report(system, first_s, stability)
