"""The landing child (``python -m streaming.landing OPTIONS_JSON``): lands the lines the serving
process's :class:`~streaming.landing.process.LandingProcess` sends it, on its own core.

Protocol, serving process → child (its stdin): messages of a header ``<op: u8, kind: u32,
length: u64>`` and ``length`` bytes. ``LINES`` carries JSON lines of the kind (its index in
:data:`MARKET_KINDS`), each ended by ``\\n``; ``FLUSH`` asks for an fsync of everything received,
``ROTATE`` for sealing every open segment; ``PAUSE`` (its bytes: the reason) stops landing,
``RESUME`` starts it again, ``STATE`` asks whether it is paused. End of file means close: the
child seals everything and exits. Child → serving process (its stdout): one JSON line when ready
(the segments it recovered) and one answer per request, or the error that stopped it.

A full disk pauses landing instead of ending the child: what reached the files stays as whole
records and is sealed, what had not is dropped, and so is every line that arrives until
``RESUME`` (the serving side re-fetches the trades: see :mod:`streaming.landing.guard`). The
reason is logged on stderr (the sidecar's log) and answered to every ``STATE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from streaming.landing.disk import LandingDiskFullError
from streaming.landing.recovery import live_owners
from streaming.landing.writer import LandingWriter
from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_SNAPSHOTS_KIND,
    BOOK_TICKERS_KIND,
    BOOK_UPDATES_KIND,
    TRADES_KIND,
)

MARKET_KINDS = (TRADES_KIND, BOOK_TICKERS_KIND, BOOK_UPDATES_KIND, BOOK_SNAPSHOTS_KIND)
"""What the child lands, in the order of their kind index."""

# How long a starting child waits for the landing process of an earlier sidecar (killed, so its
# stdin closed) to finish sealing, before it recovers segments and the ingest reads where it is.
PREDECESSOR_WAIT_S = 30.0

HEADER = struct.Struct("<BIQ")
LINES, FLUSH, ROTATE, PAUSE, RESUME, STATE = 1, 2, 3, 4, 5, 6


class ChildLanding:
    """The child's writers, one per market kind, and why landing is paused (None: landing)."""

    def __init__(self, writers: list[LandingWriter]) -> None:
        self.writers = writers
        self.paused: str | None = None
        self.dropped = 0  # lines not landed because landing was paused

    def land(self, kind: int, lines: bytes) -> None:
        if self.paused is not None:
            self.dropped += lines.count(b"\n")
        else:
            self._guarded(lambda: self.writers[kind].write_lines(lines))

    def poll(self) -> None:
        """Write what arrived (fsync and rotation when due), unless paused."""
        for writer in self.writers:
            if self.paused is None:
                self._guarded(writer.poll)

    def flush(self) -> bool:
        for writer in self.writers:
            if self.paused is None:
                self._guarded(writer.flush)
        return self.paused is None

    def rotate(self) -> list[str]:
        sealed: list[str] = []
        for writer in self.writers:
            if self.paused is None:
                self._guarded(lambda writer=writer: sealed.extend(map(str, writer.rotate())))
        return sealed

    def pause(self, reason: str) -> None:
        """Land what fits, seal every segment whole, and drop lines until resumed."""
        if self.paused is not None:
            return
        for writer in self.writers:
            with contextlib.suppress(LandingDiskFullError):  # what did not fit is dropped below
                writer.flush()
        for writer in self.writers:
            self.dropped += writer.drop_unwritten()
            try:
                writer.rotate()
            except LandingDiskFullError as error:  # a rename found no room: sealed at close
                print(f"landing: {error}; its segments stay open for now", file=sys.stderr)
        self.paused = reason
        print(f"landing paused: {reason}", file=sys.stderr, flush=True)

    def resume(self) -> None:
        if self.paused is not None:
            print(f"landing resumed ({self.dropped} lines not landed)", file=sys.stderr)
        self.paused = None

    def _guarded(self, action: Callable[[], object]) -> None:
        try:
            action()
        except LandingDiskFullError as error:
            self.pause(str(error))


def _read_exactly(fd: int, size: int) -> tuple[bytes, bool]:
    """Up to ``size`` bytes from ``fd``, and whether all came (less only at end of file)."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), not left


def serve(options: dict[str, Any], stdin: int, stdout: IO[bytes]) -> None:
    """The child's loop: land what arrives on ``stdin`` until end of file, then seal."""
    root = Path(options["root"])
    # The serving process writes no market segment: one named by its pid is from before it
    # landed through this child (or from a process that had the pid), so it is recovered.
    serving = (os.getppid(),)
    wait_for_predecessors(root, MARKET_KINDS, PREDECESSOR_WAIT_S, serving)
    writers = [
        LandingWriter(
            root,
            kind,
            flush_every_s=options["flush_every_s"],
            rotate_every_s=options["rotate_every_s"],
            max_segment_bytes=options["max_segment_bytes"],
            inline_poll=False,
            adopted=serving,
        )
        for kind in MARKET_KINDS
    ]
    _answer(stdout, {"recovered": [str(path) for writer in writers for path in writer.recovered]})
    landing = ChildLanding(writers)
    # After each message the writers' poll writes what arrived (fsync and rotation when due).
    tick_s = min(0.25, options["flush_every_s"], options["rotate_every_s"])
    next_poll = time.monotonic() + tick_s
    while True:
        readable, _, _ = select.select([stdin], [], [], max(0.0, next_poll - time.monotonic()))
        if readable:
            header, whole = _read_exactly(stdin, HEADER.size)
            if not whole:  # end of file: the serving process closed the pipe, or died
                break
            op, kind, length = HEADER.unpack(header)
            body, whole = _read_exactly(stdin, length)
            if op == LINES:
                # Cut short when the serving process died while sending: its whole lines land.
                landing.land(kind, body if whole else body[: body.rfind(b"\n") + 1])
            if not whole:
                break
            if op != LINES:
                _answer(stdout, _request(landing, op, body))
        if readable or time.monotonic() >= next_poll:
            landing.poll()
            next_poll = time.monotonic() + tick_s
    for writer in writers:
        writer.close()
    _answer(stdout, {"sealed": [str(path) for writer in writers for path in writer.sealed]})


def _request(landing: ChildLanding, op: int, body: bytes) -> dict[str, Any]:
    """The answer to one request (every message but ``LINES``)."""
    if op == FLUSH:
        return {"flushed": landing.flush()}
    if op == ROTATE:
        return {"sealed": landing.rotate()}
    if op == PAUSE:
        landing.pause(body.decode() or "paused by the sidecar")
    elif op == RESUME:
        landing.resume()
    elif op != STATE:
        raise ValueError(f"unknown landing message {op}")
    return {"paused": landing.paused, "dropped": landing.dropped}


def _answer(stdout: IO[bytes], message: dict[str, Any]) -> None:
    try:
        stdout.write(json.dumps(message).encode() + b"\n")
        stdout.flush()
    except BrokenPipeError:  # the serving process is gone: the segments are what matters
        pass


def wait_for_predecessors(
    root: Path, kinds: Sequence[str], timeout_s: float, adopted: Sequence[int] = ()
) -> None:
    """Wait until no other live process owns an ``.open`` segment of ``kinds`` under ``root``.

    After a sidecar is killed its landing process still seals what it had received; a new one
    recovering or resuming before that would gap-fill trades the old one is about to land.
    """
    deadline = time.monotonic() + timeout_s
    while (owners := live_owners(root, kinds, adopted)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if owners:
        print(
            f"landing: processes {sorted(owners)} still hold open segments under {root} after "
            f"{timeout_s:.0f} s; their segments are left to them",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m streaming.landing OPTIONS_JSON`` (started by ``LandingProcess``)."""
    parser = argparse.ArgumentParser(description="The sidecar's market-data landing child.")
    parser.add_argument("options", help="JSON: root and the flush, rotation and size settings")
    args = parser.parse_args(argv)
    # The sidecar decides when landing ends (by closing the pipe, or by dying): a Ctrl-C or a
    # SIGTERM sent to every process of its group or cgroup must not cut the sealing short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stdout = sys.stdout.buffer
    try:
        serve(json.loads(args.options), sys.stdin.fileno(), stdout)
    except Exception as error:  # reported to the serving process, then the exit status says it
        _answer(stdout, {"error": f"{type(error).__name__}: {error}"})
        raise
    # Everything is sealed and answered: skip the interpreter's teardown (~15 ms), which the
    # sidecar's shutdown would wait for.
    os._exit(0)
