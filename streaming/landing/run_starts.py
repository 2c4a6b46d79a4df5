"""Where each symbol's run began, kept durably in the landing folder, and where a restart resumes.

The ingest resumes a symbol after its last landed trade (:func:`last_landed_trade_ids`). A symbol
that had landed nothing when its sidecar stopped (landing paused on a full disk, or killed within
its first second) has no such trade, and without more it would start afresh from the stream's
next trade: every trade it was handed before the stop would never be fetched. So the first trade
id of each symbol's run (the resume point's successor, or the first trade the feed delivered) is
recorded here before any of its trades lands, and a restart resumes from the later of the two.

The file is small and replaced atomically (written aside, fsynced, renamed, the folder fsynced),
so a crash leaves either the old map or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from streaming.landing.durable import fsync_directory, make_directories, write_all
from streaming.landing.recovery import last_landed_trade_ids
from trading_assets.lib.instruments import legacy_instrument

RUN_STARTS_NAME = ".run-starts.json"  # hidden: no reader of the layout lists it


class RunStartsError(ValueError):
    """The run-starts file is not what this module writes; the message names it."""


def run_starts_path(root: Path | str) -> Path:
    return Path(root) / RUN_STARTS_NAME


def read_run_starts(root: Path | str) -> dict[str, int]:
    """The recorded first trade id of each instrument's latest run (empty when none was
    recorded); a bare symbol, recorded before instrument ids, is the Binance spot one."""
    path = run_starts_path(root)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        starts = json.loads(text)
        if not isinstance(starts, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in starts.items()
        ):
            raise ValueError("expected an object of symbol → first trade id")
    except ValueError as error:
        message = f"{path}: unreadable run starts ({error}); remove it to start afresh"
        raise RunStartsError(message) from None
    return {k if ":" in k else legacy_instrument(k): v for k, v in starts.items()}


def record_run_starts(root: Path | str, starts: Mapping[str, int]) -> None:
    """Record ``starts`` (instrument → first trade id of this run) durably, keeping the others'.

    Raises ``OSError`` (``ENOSPC`` on a full disk) without touching the recorded map."""
    root = Path(root)
    merged = {**read_run_starts(root), **{s.upper(): int(i) for s, i in starts.items()}}
    make_directories(root)
    target = run_starts_path(root)
    aside = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, json.dumps(merged, sort_keys=True).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(aside, target)
    finally:
        aside.unlink(missing_ok=True)
    fsync_directory(root)


def resume_points(root: Path | str) -> dict[str, int]:
    """Per instrument, the trade id after which the ingest resumes: its last landed trade, or the
    one before its recorded run start when that is later (nothing of that run landed)."""
    points = last_landed_trade_ids(root)
    for symbol, start in read_run_starts(root).items():
        points[symbol] = max(points.get(symbol, start - 1), start - 1)
    return points
