"""Shared benchmark plumbing: run a measurement in a child process so its peak RSS is its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """This process's peak resident set size since it started running its own program.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it across ``execve``, so a child spawned by
    a large bench process reports at least the parent's peak. ``VmHWM`` belongs to the
    process's own address space and starts over at ``execve``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        return process_peak_rss_mb("self")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux and BSDs


def process_peak_rss_mb(pid: int | str) -> float:
    """A live process's peak resident set size (``VmHWM``), read from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def run_child(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``python -m module args...`` and return the JSON object its last stdout line prints."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])
