"""Free space under the landing folder: how much there is, and when landing must pause for it.

Market data that cannot land is not lost while the exchange still serves it by trade id, so
the sidecar pauses landing market data before the disk is full (below ``TRADING_LANDING_MIN_FREE``)
and re-fetches the missed trades once space returns (:mod:`streaming.landing.guard`). The room
left below the minimum keeps what cannot be fetched again, the predictions log and the runs'
starting points, landing meanwhile. A full disk itself (``ENOSPC``) is the backstop, not the plan:
a writer that meets it cuts its segment back to its last complete record and reports it as
:class:`LandingDiskFullError` instead of dying.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
DEFAULT_MIN_FREE = "1GiB"
RESUME_MARGIN = 0.25  # landing resumes once free space passes the minimum by this share of it
MIN_RESUME_MARGIN_BYTES = 1 << 20  # and by at least this much (a minimum of 0 included)

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt]?)(i?b)?)?\s*$", re.IGNORECASE)
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the filesystem (or the user's quota) has no room left."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


class LandingDiskFullError(OSError):
    """A landing write found no room; what it had written so far is intact (whole records)."""

    def __init__(self, kind: str, where: Path, cause: OSError) -> None:
        code = cause.errno if cause.errno is not None else errno.ENOSPC
        super().__init__(code, f"no space left to land {kind} under {where}: {os.strerror(code)}")

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]"
        return str(self.strerror)


@dataclass(frozen=True)
class DiskSpace:
    """A filesystem's size and the bytes an unprivileged writer may still use."""

    free_bytes: int
    total_bytes: int

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 0.0


def measure(path: Path | str) -> DiskSpace:
    """Free space of the filesystem holding ``path`` (or its nearest existing parent: the landing
    folder is created by its first write)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    stats = os.statvfs(where)
    return DiskSpace(stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize)


@dataclass(frozen=True)
class MinFree:
    """The free space landing keeps: a size in bytes, or a share of the filesystem."""

    size_bytes: int = 0
    share: float | None = None

    @classmethod
    def parse(cls, text: str) -> MinFree:
        """``1GiB``, ``512MiB``, ``200M``, ``1073741824`` (bytes) or ``5%``; ``ValueError`` with a
        one-line message otherwise."""
        if match := _SHARE.match(text):
            share = float(match.group(1)) / 100
            if share >= 1:
                raise ValueError(f"expected a share below 100%, got {text!r}")
            return cls(share=share)
        match = _SIZE.match(text)
        if match is None:
            expected = "a size like 1GiB or 512MiB, or a share like 5%"
            raise ValueError(f"expected {expected}, got {text!r}")
        number, unit = float(match.group(1)), (match.group(2) or "").lower()
        return cls(size_bytes=int(number * _UNITS[unit]))

    def bytes_of(self, space: DiskSpace) -> int:
        """The minimum in bytes on a filesystem of ``space``'s size."""
        if self.share is not None:
            return int(self.share * space.total_bytes)
        return self.size_bytes

    def resume_bytes(self, space: DiskSpace) -> int:
        """Free bytes at which paused landing resumes: above the minimum by a margin, so that the
        catch-up's own writes do not pause it again at once."""
        minimum = self.bytes_of(space)
        return minimum + max(int(minimum * RESUME_MARGIN), MIN_RESUME_MARGIN_BYTES)

    def __str__(self) -> str:
        if self.share is not None:
            return f"{self.share * 100:g}%"
        return human_bytes(self.size_bytes)


def human_bytes(count: int) -> str:
    """``count`` in the largest binary unit that keeps it at or above 1 (``3.5 MiB``)."""
    value, unit = float(count), "B"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
