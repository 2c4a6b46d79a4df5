"""Durable dead letters: every frame that could not be parsed, kept byte for byte with the reason.

One JSON object per line::

    {"receive_ns": 1723161255343000000, "kind": "malformed json", "field": null,
     "reason": "malformed json: JSON is malformed: ...", "raw_b64": "PDxtYWxmb3JtZWQ+Pi..."}

Each record is flushed and fsynced before ``write`` returns, so a frame the feed reported as
dead-lettered survives a crash right after.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec

from streaming.venues.errors import VenueParseError


class DeadLetter(msgspec.Struct, frozen=True):
    """One rejected frame: when it arrived, why it was rejected, and its exact bytes."""

    receive_ns: int
    kind: str
    field: str | None
    reason: str
    raw: bytes


class DeadLetterWriter:
    """Appends dead letters to a JSON-lines file (created with its folder when missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - owned until close()
        self.written = 0

    def __enter__(self) -> DeadLetterWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, raw: bytes, receive_ns: int, error: VenueParseError) -> None:
        """Append one record and make it durable (flush + fsync) before returning."""
        record = {
            "receive_ns": receive_ns,
            "kind": error.kind,
            "field": error.field,
            "reason": str(error),
            "raw_b64": base64.b64encode(raw).decode("ascii"),
        }
        self._file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.written += 1

    def close(self) -> None:
        """Close the file (records are already durable)."""
        self._file.close()


def read_dead_letters(path: str | os.PathLike[str]) -> Iterator[DeadLetter]:
    """The records of a dead-letter file, oldest first, raw bytes decoded.

    A last line without its newline is a write torn by a crash (never reported as written),
    so it is skipped rather than failing the whole file.
    """
    with open(path, "rb") as lines:
        for line in lines:
            if not line.endswith(b"\n"):
                return
            record = json.loads(line)
            yield DeadLetter(
                receive_ns=record["receive_ns"],
                kind=record["kind"],
                field=record["field"],
                reason=record["reason"],
                raw=base64.b64decode(record["raw_b64"]),
            )
