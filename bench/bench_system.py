"""The whole system as ``make run`` starts it: three end-to-end times, on a throwaway copy.

``make run HISTORY_DAYS=1`` runs in a copy of the repository (see :mod:`bench.system_run`: fresh
``dagster_home`` and data, free loopback ports, the shared ``.venv`` untouched), with the
staleness threshold and the rollout policy shortened through their environment variables.

1. **First prediction**: from ``make run`` to the sidecar's ``/predictions/latest`` holding a
   prediction with ``model_version`` set. On the way: the backfill of one day × 2 symbols, the
   first model chain (training set → full → incremental → ONNX → MLflow @challenger), the
   rollout sensor's bootstrap move to @champion, the sidecar's next model poll. Floor after the
   registration: a rollout tick (30 s) and a model poll (10 s).
2. **Stale data → repair** (see :mod:`bench.system_staleness`): a market stall (WebSocket
   stalled and REST failing), until the staleness sensor judges the online rows stale; then an
   online store write outage, until the ``staleness_repair`` run it launches succeeds. Floor:
   the stale threshold (``STALENESS_MAX_AGE_S``); the sensor ticks every 60 s.
3. **Challenger → @champion**: (a) the first version, from its registration to the bootstrap
   move; (c) **a copy of the champion (gates tie by construction): rollout mechanics only** -- a
   new version with the champion's ONNX artifact (same source and run, its registration tags),
   put on @shadow by hand, through @canary to @champion and served by the sidecar. It scores
   every tick exactly as the champion does, and the rollout sensor compares the champion over
   the shadow's own ticks (from its first landed prediction): identical IC and hit rate, which
   pass ``>=``. (Measured before the sensor compared from the first shadow prediction, hence
   @shadow set by hand, which dates the shadow that way too.) ``ic_floor`` is off
   (``TRADING_ROLLOUT_IC_FLOOR=-1``): the champion's own live IC on the synthetic tape is noise
   around 0 and would otherwise decide. What is timed: the sidecar's model swaps, the label
   horizon (60 s) before shadow predictions mature, rollout ticks (30 s), the canary period, the
   landing of predictions and bars. (b) Then, with the time left, second challengers registered
   by the incremental chain (``dagster asset materialize`` with the gate relaxed, as in
   ``bench_models``) through @shadow and @canary to @champion. Such a shadow must match the
   champion's live IC and hit rate, a coin toss on the synthetic tape: a rejected shadow is
   reported, and another challenger is tried while time remains.

Every wait has a hard timeout; everything started is stopped (process group SIGINT, then
SIGKILL). The table prints the 1-minute load average at the start and the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_models import CYCLE_ASSETS, RUN_CONFIG
from bench.harness import REPO_ROOT
from bench.system_run import (
    Row,
    RunningSystem,
    copy_worktree,
    running_system,
    span,
    wait_for,
)
from bench.system_staleness import STALE_AFTER_S, stall_to_repair

HISTORY_DAYS = 1
ROLLOUT_INTERVAL_S = 30  # sensors/rollout.py EVALUATE_EVERY_S
MODEL_POLL_S = 10  # streaming/config.py model_poll_s
LABEL_HORIZON_S = 60
ROLLOUT = {
    "min_shadow_predictions": 30,
    "canary_period_s": 60,
    "min_canary_predictions": 10,
    "ic_floor": -1,  # off: the copy of 3c would otherwise pass on the champion's noise
}
FIRST_PREDICTION_TIMEOUT_S = 1500
CHALLENGER_TIMEOUT_S = 600  # one `dagster asset materialize` of the incremental chain
ROLLOUT_TIMEOUT_S = 900  # the champion copy and the second-challenger attempts together
COPY_TIMEOUT_S = 480  # the champion copy's share
CHALLENGER_ATTEMPTS = 3
ENDED = {"champion", "rejected", "rolled_back", "expired"}


def _tags(version: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in version.get("tags", [])}


def registered_s(version: dict[str, Any]) -> float:
    return int(version["creation_timestamp"]) / 1000


def since_s(version: dict[str, Any], role: str) -> float | None:
    """When the version took ``role``, from the rollout sensor's version tag."""
    raw = _tags(version).get(f"rollout.{role}_since_ns")
    return None if raw is None else int(raw) / 1e9


def status(version: dict[str, Any]) -> str:
    return _tags(version).get("rollout.status", "")


def find_version(system: RunningSystem, number: str) -> dict[str, Any] | None:
    return next((v for v in system.model_versions() if v["version"] == number), None)


def first_prediction(system: RunningSystem) -> tuple[list[Row], dict[str, Any] | None]:
    def served() -> tuple[float, dict[str, Any]] | None:
        modelled = [p for p in system.latest_predictions().values() if p.get("model_version")]
        return (time.time(), modelled[0]) if modelled else None

    found = wait_for(system, served, FIRST_PREDICTION_TIMEOUT_S)
    if found is None:
        note = f"none within {FIRST_PREDICTION_TIMEOUT_S} s; " + system.log_tail("[bootstrap]", 1)
        return [Row("1. make run → first prediction from a model version", None, note=note)], None
    served_at, prediction = found
    version = find_version(system, str(prediction["model_version"]))
    registered = None if version is None else registered_s(version)
    champion = None if version is None else since_s(version, "champion")
    start = system.started_s
    return [
        Row(
            "1. make run → first prediction from a model version",
            served_at - start,
            "≥ the steps below",
            f"v{prediction['model_version']}, {prediction['symbol']}",
        ),
        Row("   make run → v1 registered (backfill + first model chain)", span(start, registered)),
        Row(
            "   registered → @champion (rollout sensor)",
            span(registered, champion),
            f"≤ {ROLLOUT_INTERVAL_S} s (one tick)",
        ),
        Row(
            "   @champion → served by the sidecar",
            span(champion, served_at),
            f"≤ {MODEL_POLL_S} s (one model poll)",
        ),
    ], version


def register_challenger(system: RunningSystem) -> str | None:
    """One incremental chain through to @challenger; the new version's number (None: failed)."""
    before = {v["version"] for v in system.model_versions()}
    command = [
        str(system.root / ".venv" / "bin" / "python"), "-m", "dagster", "asset", "materialize",
        "-m", "trading_assets.definitions", "--select", ",".join(CYCLE_ASSETS),
        "--config-json", json.dumps(RUN_CONFIG),
    ]  # fmt: skip
    try:
        subprocess.run(
            command,
            cwd=system.root,
            env=system.market_env(),
            check=True,
            capture_output=True,
            timeout=CHALLENGER_TIMEOUT_S,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"incremental chain failed: {str(error.stderr or b'')[-600:]}")
        return None
    new = [v for v in system.model_versions() if v["version"] not in before]
    mine = [v for v in new if "challenger" in v.get("aliases", [])]
    return max((v["version"] for v in mine or new), key=int, default=None)


def ended_version(system: RunningSystem, number: str) -> dict[str, Any] | None:
    version = find_version(system, number)
    return version if version is not None and status(version) in ENDED else None


def served_version(system: RunningSystem, number: str) -> float | None:
    """When ``/predictions/latest`` first holds a prediction of version ``number``."""
    latest = system.latest_predictions().values()
    return time.time() if any(str(p.get("model_version")) == number for p in latest) else None


def champion_copy_rows(system: RunningSystem, timeout_s: float) -> list[Row]:
    """3c: a copy of the champion, @shadow set by hand, through @canary to @champion, served."""
    label = "3c. copy of the champion (gates tie by construction): rollout mechanics only"
    floor = f"≥ {MODEL_POLL_S + LABEL_HORIZON_S} s + {ROLLOUT['canary_period_s']} s canary"
    champion = system.version_by_alias("champion")
    if champion is None:
        return [Row(label, None, floor, "no @champion to copy")]
    copy = system.copy_version(champion)
    number = str(copy["version"])
    system.set_alias("shadow", number)
    shadowed, load_before = time.time(), load_average()
    version = wait_for(system, lambda: ended_version(system, number), timeout_s, poll_s=2.0)
    version = version or find_version(system, number) or {}
    outcome = status(version) or "no decision"
    source = f"v{number} = v{champion['version']}'s artifact"
    if outcome != "champion":
        note = f"{source}; {outcome} after {time.time() - shadowed:.0f} s; " + system.log_tail(
            f"v{number}", 2
        ).replace("\n", " / ")
        return [Row(label, None, floor, note)]
    crowned = since_s(version, "champion")
    served = wait_for(system, lambda: served_version(system, number), 3 * MODEL_POLL_S)
    loads = f"load {load_before}–{load_average()}"
    canary = since_s(version, "canary")
    return [
        Row(label, span(shadowed, crowned), floor, f"{source}; @shadow set by hand; {loads}"),
        Row(
            "    @shadow → @canary",
            span(shadowed, canary),
            f"≥ {MODEL_POLL_S} s poll + {LABEL_HORIZON_S} s + "
            f"{ROLLOUT['min_shadow_predictions']} matured",
        ),
        Row(
            "    @canary → @champion",
            span(canary, crowned),
            f"≥ {ROLLOUT['canary_period_s']} s canary period",
        ),
        Row(
            "    @champion → served by the sidecar",
            span(crowned, served),
            f"≤ {MODEL_POLL_S} s (one model poll)",
        ),
    ]


def rollout_rows(system: RunningSystem, first: dict[str, Any] | None) -> list[Row]:
    first_floor = f"≤ {ROLLOUT_INTERVAL_S} s (one tick)"
    rows = [
        Row(
            "3a. first challenger registered → @champion (bootstrap move)",
            None if first is None else span(registered_s(first), since_s(first, "champion")),
            first_floor,
            "no champion yet: no shadow or canary",
        )
    ]
    if first is None:
        return rows
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_S
    rows += champion_copy_rows(system, COPY_TIMEOUT_S)
    floor = f"≥ {LABEL_HORIZON_S} s label horizon + {ROLLOUT['canary_period_s']} s canary"
    for attempt in range(1, CHALLENGER_ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining < 300:
            break
        number = register_challenger(system)
        if number is None:
            rows.append(Row(f"3b. challenger #{attempt}", None, floor, "chain failed"))
            break

        def ended(number: str = number) -> dict[str, Any] | None:
            return ended_version(system, number)

        version = wait_for(system, ended, deadline - time.monotonic(), poll_s=2.0)
        version = version or find_version(system, number) or {}
        outcome = status(version) or "no decision"
        start = registered_s(version) if version else None
        label = f"3b. second challenger v{number} registered → @champion"
        if outcome == "champion":
            rows += [
                Row(label, span(start, since_s(version, "champion")), floor),
                Row("    registered → @shadow", span(start, since_s(version, "shadow"))),
                Row(
                    "    @shadow → @canary",
                    span(since_s(version, "shadow"), since_s(version, "canary")),
                    f"≥ {LABEL_HORIZON_S} s + {ROLLOUT['min_shadow_predictions']} matured",
                ),
                Row(
                    "    @canary → @champion",
                    span(since_s(version, "canary"), since_s(version, "champion")),
                    f"≥ {ROLLOUT['canary_period_s']} s canary period",
                ),
            ]
            break
        shadowed = since_s(version, "shadow")
        rows.append(
            Row(
                f"3b. challenger v{number}: registered → {outcome}",
                None if outcome == "no decision" else span(start, time.time()),
                floor,
                f"@shadow after {span(start, shadowed) or 0:.0f} s; "
                + _tags(version).get("rollout.reason", f"status {outcome!r}"),
            )
        )
    return rows


def print_table(rows: list[Row], loads: tuple[str, str]) -> None:
    print(
        f"make run HISTORY_DAYS={HISTORY_DAYS}; STALENESS_MAX_AGE_S={STALE_AFTER_S}; "
        + "; ".join(f"TRADING_ROLLOUT_{k.upper()}={v}" for k, v in ROLLOUT.items())
    )
    print(f"load average (1 min) at start {loads[0]}, at end {loads[1]}")
    print(f"{'measure':<80}{'seconds':>9}   {'floor':<44}note")
    for row in rows:
        value = "–" if row.seconds is None else f"{row.seconds:.0f}"
        print(f"{row.measure:<80}{value:>9}   {row.floor:<44}{row.note}")


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    extra_env = {"STALENESS_MAX_AGE_S": str(STALE_AFTER_S)} | {
        f"TRADING_ROLLOUT_{key.upper()}": str(value) for key, value in ROLLOUT.items()
    }
    start_load = load_average()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-system-") as tmp:
        root = Path(tmp) / "repo"
        copy_worktree(REPO_ROOT, root)
        with running_system(root, extra_env, HISTORY_DAYS) as system:
            try:
                first_rows, first = first_prediction(system)
                rows += first_rows
                if first is not None:
                    rows += stall_to_repair(system)
                rows += rollout_rows(system, first)
            finally:
                if not system.alive():
                    print("make run exited early:\n" + system.log_tail())
    print_table(rows, (start_load, load_average()))


if __name__ == "__main__":
    main()
