"""Run every benchmark module (bench/bench_*.py) and print its comparison table.

Usage: ``python -m bench [name ...]`` where a name filters modules by substring.
Benchmarks report measurements next to a named peer or floor; they never assert timings.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path


def machine_line() -> str:
    cpu = "unknown cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.node()} | {cpu} | {os.cpu_count()} cores | Python {platform.python_version()}"
    )


def main(argv: list[str]) -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    selected = [m for m in modules if not argv or any(a in m for a in argv)]
    print(f"machine: {machine_line()}\n")
    for name in selected:
        print(f"=== {name} ===")
        importlib.import_module(f"bench.{name}").main()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
