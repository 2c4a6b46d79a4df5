"""After a crash: seal what a killed writer left open, and tell the ingest where landing stopped."""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

import msgspec

from streaming.landing.durable import fsync_directory
from trading_assets.lib.lakehouse.landing_layout import (
    OPEN_SUFFIX,
    SEALED_SUFFIX,
    TRADES_KIND,
    LandedSegment,
    complete_prefix_length,
    last_complete_record,
    list_segments,
)


class _TradeId(msgspec.Struct):
    trade_id: int


_decode_trade_id = msgspec.json.Decoder(_TradeId).decode


def recover_open_segments(root: Path | str, kind: str, adopted: Iterable[int] = ()) -> list[Path]:
    """Cut each orphaned ``.open`` segment back to its last complete record and seal it.

    A segment is orphaned when the pid in its name is this process (an earlier run that reused
    the pid, as a container's pid 1 does), one of ``adopted`` (a process known not to write
    ``kind``) or no longer alive; a live writer's segments are left alone (an exited process
    not yet reaped counts as gone).
    Segments with no complete record are removed. Returns the sealed paths.
    """
    sealed: list[Path] = []
    adopted = frozenset(adopted)
    for segment in list_segments(Path(root), kind, include_open=True):
        if segment.sealed or not _orphaned(segment, adopted):
            continue
        path = segment.path
        with path.open("r+b") as stream:
            keep = complete_prefix_length(stream.read())
            stream.truncate(keep)
            stream.flush()
            os.fsync(stream.fileno())
        if keep == 0:
            path.unlink()
        else:
            target = path.with_name(path.name.removesuffix(OPEN_SUFFIX) + SEALED_SUFFIX)
            os.replace(path, target)
            sealed.append(target)
        fsync_directory(path.parent)
    return sealed


def last_landed_trade_ids(root: Path | str) -> dict[str, int]:
    """Highest trade id landed per instrument, from sealed and open segments of its newest day.

    A torn last record is ignored, so the result is what survived a crash; the ingest gap-fills
    from the id after it. Symbols with nothing landed are absent.
    """
    last_ids: dict[str, int] = {}
    segments = list_segments(Path(root), TRADES_KIND, include_open=True)
    for symbol, of_symbol in groupby(segments, key=lambda segment: segment.instrument):
        by_day = [list(group) for _, group in groupby(of_symbol, key=lambda s: s.day)]
        for day_segments in reversed(by_day):
            ids = [trade_id for s in day_segments if (trade_id := _last_trade_id(s)) is not None]
            if ids:
                last_ids[symbol] = max(ids)
                break
    return last_ids


def _last_trade_id(segment: LandedSegment) -> int | None:
    record = last_complete_record(segment.path)
    return None if record is None else _decode_trade_id(record).trade_id


def live_owners(root: Path | str, kinds: Iterable[str], adopted: Iterable[int] = ()) -> set[int]:
    """Pids of the live processes (other than this one and ``adopted``) writing ``.open``
    segments of ``kinds``."""
    adopted = frozenset(adopted)
    owners = {
        _owner(segment)
        for kind in kinds
        for segment in list_segments(Path(root), kind, include_open=True)
        if not segment.sealed and not _orphaned(segment, adopted)
    }
    return {pid for pid in owners if pid is not None}


def _owner(segment: LandedSegment) -> int | None:
    parts = segment.stem.split("-")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def _orphaned(segment: LandedSegment, adopted: frozenset[int] = frozenset()) -> bool:
    pid = _owner(segment)
    if pid is None or pid == os.getpid() or pid in adopted:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited but not yet reaped (a killed sidecar's landing child waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")
