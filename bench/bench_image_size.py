"""What each image installs: the sidecar's environment next to the Dagster image's.

Both are built the way their Dockerfiles build them (``tests/deploy/images.py`` replays the
``uv sync`` lines in a clean folder), and measured from the installed files of each distribution
(their RECORD), with no bytecode compiled. An image adds its base (``python:3.11-slim-bookworm``)
and the project's sources (~2 MB) to these figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.deploy.images import DOCKERFILES, build_image_env, installed_distributions

MB = 1e6


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-images-") as workdir:
        sizes = {
            image: installed_distributions(build_image_env(image, Path(workdir) / image))
            for image in sorted(DOCKERFILES, reverse=True)
        }
    full = sum(sizes["dagster"].values())
    print("| image | distributions | installed | vs the Dagster image | largest |")
    print("|---|---|---|---|---|")
    for image, dists in sizes.items():
        total = sum(dists.values())
        largest = sorted(dists.items(), key=lambda item: -item[1])[:6]
        named = ", ".join(f"{name} {size / MB:.0f}" for name, size in largest)
        print(f"| {image} | {len(dists)} | {total / MB:,.0f} MB | {total / full:.2f}× | {named} |")
    only = set(sizes["dagster"]) - set(sizes["sidecar"])
    saved = sum(sizes["dagster"][name] for name in only)
    print(f"\nleft out of the sidecar: {len(only)} distributions, {saved / MB:,.0f} MB")
