"""A real small filesystem to fill: a tmpfs mounted for a test, and a filler file that leaves it a
chosen number of free bytes."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.landing.disk import measure

MiB = 1 << 20


@contextlib.contextmanager
def small_tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` for the duration (the test is skipped, with
    the reason, where mounting is not permitted: the suite runs as root in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)]
    result = subprocess.run(mount, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)


def fill(disk: Path, leave_bytes: int, name: str = "filler") -> Path:
    """Take the filesystem's free space down to about ``leave_bytes`` with one file (allocated,
    not sparse); deleting it gives the space back."""
    filler = disk / name
    with filler.open("ab") as stream:
        grow = measure(disk).free_bytes - leave_bytes
        if grow > 0:
            os.posix_fallocate(stream.fileno(), stream.seek(0, os.SEEK_END), grow)
    return filler
