"""Market-data landing in a child process: the serving process only encodes and queues.

Landing each record in the serving process cost its message loop about 0.5 µs (encode, route,
queue), and sealing a busy stretch (joining, writing and fsyncing megabytes of lines) about as much
again, all under the serving process's GIL. Here the serving process keeps only what must happen on
its loop: an outlet's ``write`` queues the record, and every ENCODE_BATCH records are encoded as
JSON lines in one call. A sender thread encodes the rest the same way and ships the lines to
``python -m streaming.landing`` every ``send_every_s`` (10 ms), and that child routes each line
to its segment by its symbol and time fields (without decoding the rest) and does the writing,
fsync, rotation and sealing with the same
:class:`~streaming.landing.writer.LandingWriter`, on the other core. The segment files are the
same as an in-process writer's, in write order.

(Shipping the raw frames instead, for the child to parse, cut the serving side further, but the
child then needed ~1.6 µs a frame, parse and encode included, and fell behind a replay.)

Protocol, serving process → child (its stdin): messages of a header ``<op: u8, kind: u32,
length: u64>`` and ``length`` bytes. ``LINES`` carries JSON lines of the kind (its index in
:data:`MARKET_KINDS`), each ended by ``\\n``; ``FLUSH`` asks for an fsync of everything received,
``ROTATE`` for sealing every open segment. End of file means close: the child seals everything
and exits. Child → serving process (its stdout): one JSON line when ready (the segments it
recovered) and one answer per request (``FLUSH``, ``ROTATE``, close), or the error that stopped it.

Durability: a line reaches the child about ``send_every_s`` after ``write``, is written to its
segment right away (without fsync) and fsynced every ``flush_every_s``. If the serving process is
killed, the child still lands everything it received and seals it (its stdin closes), so a SIGKILL
loses at most the last ``send_every_s`` of lines, which the restarted ingest gap-fills; a starting
child first waits for such a predecessor to finish. If the child dies, the serving process's next
``write`` or ``poll`` raises :class:`LandingProcessError`: landing no longer works, so the sidecar
stops instead of serving on data it cannot land.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from streaming.landing.durable import write_all
from streaming.landing.recovery import live_owners
from streaming.landing.writer import LandingWriter, LandingWriterClosedError
from trading_assets.lib.lakehouse.landing_layout import BOOK_TICKERS_KIND, TRADES_KIND

MARKET_KINDS = (TRADES_KIND, BOOK_TICKERS_KIND)
"""What the child lands, in the order of their kind index."""

SEND_EVERY_S = 0.01
PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process
START_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 120.0
# A child that takes no input for this long (stuck on its disk) counts as failed: the sidecar
# stops rather than buffer without bound.
STALL_TIMEOUT_S = 60.0
# How long a starting child waits for the landing process of an earlier sidecar (killed, so its
# stdin closed) to finish sealing, before it recovers segments and the ingest reads where it is.
PREDECESSOR_WAIT_S = 30.0

_HEADER = struct.Struct("<BIQ")
ENCODE_BATCH = 256
_LINES, _FLUSH, _ROTATE = 1, 2, 3


class LandingProcessError(RuntimeError):
    """The landing child failed to start, went away, or answered with an error."""


class LandingOutlet:
    """Where one kind's records go: ``write`` queues them (see :class:`LandingProcess`)."""

    __slots__ = (
        "_append", "_broken", "_lock", "buffer", "encode_lines", "failure", "kind", "records"
    )  # fmt: skip

    def __init__(
        self, kind: str, encoder: msgspec.json.Encoder, broken: Callable[[BaseException], Exception]
    ) -> None:
        self.kind = kind
        # Records are queued and encoded ENCODE_BATCH at a time, in one call: about 90 ns a
        # record, where a call per record (encode_into a buffer, then its newline) took about
        # 270 ns. Their lines wait in ``buffer`` for the sender.
        self.records: list[msgspec.Struct] = []
        self.buffer = bytearray()
        self.failure: Exception | None = None  # what write raises: landing failed, or closed
        self.encode_lines = encoder.encode_lines
        self._append = self.records.append  # the list is never replaced, only drained
        self._lock = threading.Lock()  # records → buffer → sender, in order
        self._broken = broken  # stops the landing

    def write(self, record: msgspec.Struct) -> None:
        """Queue one record (no I/O; safe on the event loop).

        The feed's records always encode; one that does not (a field of a type JSON cannot
        hold: a bug) stops the landing, like a dead child."""
        self._append(record)
        # Checked after the record is queued: a close() on another thread sets ``failure``
        # before it takes the queue for the last time, so a record that missed that shipment
        # always raises here, never vanishes (one that made it may raise as well).
        if self.failure is not None:
            raise self.failure
        if len(self.records) >= ENCODE_BATCH:
            with self._lock:
                try:
                    self._encode_queued()
                except LandingProcessError as error:
                    raise self._broken(error) from error

    def take(self) -> bytes:
        """Every line queued, encoded and removed from the queue (the sender's side)."""
        with self._lock:
            self._encode_queued()
            buffer = self.buffer
            lines = bytes(buffer)
            buffer.clear()
            return lines

    def _encode_queued(self) -> None:
        """Move the queued records, as JSON lines, to ``buffer`` (caller holds ``_lock``).
        The writing thread appends meanwhile: copying the first ``n`` and deleting them are
        single operations under the GIL, so no record is lost or encoded twice."""
        records = self.records
        count = len(records)
        if count:
            batch = records[:count]
            del records[:count]
            try:
                self.buffer += self.encode_lines(batch)
            except Exception as error:
                raise LandingProcessError(
                    f"a {self.kind} record could not be encoded: {error}"
                ) from error


class LandingProcess:
    """Land the market kinds (trades, book tickers) through one child process (see module).

    ``outlet(kind).write(record)`` queues on the calling thread, which must be the only one
    writing that kind. ``poll``, ``flush``, ``rotate`` and ``close`` can be called from any
    thread, like ``LandingWriter``'s, so :func:`streaming.landing.maintain` drives both.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        flush_every_s: float = 1.0,
        rotate_every_s: float = 20.0,
        max_segment_bytes: int = 64 << 20,
        send_every_s: float = SEND_EVERY_S,
        start_timeout_s: float = START_TIMEOUT_S,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        self.root = Path(root)
        self.stall_timeout_s = stall_timeout_s
        self.sealed: list[Path] = []
        self.error: LandingProcessError | None = None  # why landing stopped, if it failed
        encoder = msgspec.json.Encoder()
        self._outlets = [LandingOutlet(kind, encoder, self._fail) for kind in MARKET_KINDS]
        self._lock = threading.Lock()  # one shipment or request at a time
        self._closed = False
        self._closed_done = threading.Event()
        options = {
            "root": str(self.root),
            "flush_every_s": flush_every_s,
            "rotate_every_s": rotate_every_s,
            "max_segment_bytes": max_segment_bytes,
        }
        # Its stderr is the sidecar's. A session of its own: a Ctrl-C meant for the sidecar
        # must not kill the child before it has sealed what the sidecar hands it on the way out.
        self._child = subprocess.Popen(
            [sys.executable, "-m", "streaming.landing", json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._stdin = self._child.stdin.fileno()
        with contextlib.suppress(OSError):  # a shipment in one write, not 64 KiB at a time
            fcntl.fcntl(self._stdin, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._sending_since: float | None = None  # when the send in progress began
        self._stdout: IO[bytes] = self._child.stdout
        try:
            ready = self._answer(start_timeout_s)
        except LandingProcessError:
            self._child.kill()
            self._child.wait()
            raise
        self.recovered = [Path(path) for path in ready["recovered"]]
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_forever, args=(send_every_s,),
                                        name="landing-sender", daemon=True)  # fmt: skip
        self._sender.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._child.pid

    def outlet(self, kind: str) -> LandingOutlet:
        """The writing end for ``kind`` (one of :data:`MARKET_KINDS`)."""
        return self._outlets[MARKET_KINDS.index(kind)]

    def poll(self) -> None:
        """Ship what is queued now; raise if the child has failed (nothing to do once closed)."""
        if not self._closed:
            self._checked(self._ship_locked)

    def flush(self) -> None:
        """Ship everything queued and have the child fsync it (durable when this returns)."""
        self._checked(lambda: self._request(_FLUSH))

    def rotate(self) -> list[Path]:
        """Ship everything queued and seal every open segment; return the sealed paths."""
        return [Path(path) for path in self._checked(lambda: self._request(_ROTATE))]

    def close(self) -> None:
        """Ship everything, let the child seal it and exit (idempotent; a second caller waits
        for the first). ``sealed`` then lists every segment the child sealed."""
        self._acquire()
        try:
            first = not self._closed
            self._closed = True
            closed = LandingWriterClosedError(f"landing under {self.root} is closed")
            for outlet in self._outlets:  # a write from now on raises, not vanishes
                outlet.failure = outlet.failure or closed
        finally:
            self._lock.release()
        if not first:
            self._closed_done.wait()
        else:
            try:
                self._seal_and_end()
            finally:
                self._closed_done.set()
        if self.error is not None:
            raise self.error

    def _seal_and_end(self) -> None:
        self._stop.set()
        while self._sender.is_alive():  # it may be stuck sending to a stalled child
            self._sender.join(min(1.0, self.stall_timeout_s))
            if self._stalled():
                self._sender.join(CLOSE_TIMEOUT_S)  # killed: its write ends
                break
        done = threading.Event()

        def watch() -> None:  # the last shipment must not wait forever on a stalled child
            while not done.wait(min(1.0, self.stall_timeout_s)) and not self._stalled():
                pass

        threading.Thread(target=watch, name="landing-close-watch", daemon=True).start()
        with self._lock:
            assert self._child.stdin is not None
            try:
                if self.error is None:
                    self._ship_locked()
                self._child.stdin.close()  # end of file: the child seals and answers
                if self.error is None:
                    self.sealed = [Path(path) for path in self._answer(CLOSE_TIMEOUT_S)["sealed"]]
            except (OSError, LandingProcessError) as error:
                self._fail(error)
            finally:
                done.set()
            if self.error is None:
                # Sealed and answered, the child is exiting: reaped in the background rather
                # than by Popen.wait's polling, which added up to ~7 ms to every close.
                threading.Thread(target=self._child.wait, name="landing-reaper").start()
            else:
                self._reap()

    def __enter__(self) -> LandingProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- serving side internals -----------------------------------------------------------------

    def _checked(self, action: Callable[[], Any]) -> Any:
        self._acquire()
        try:
            if self.error is not None:
                raise self.error
            if self._closed:
                raise LandingWriterClosedError(f"landing under {self.root} is closed")
            try:
                return action()
            except (OSError, LandingProcessError) as error:
                raise self._fail(error) from error
        finally:
            self._lock.release()

    def _send_forever(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            with self._lock:
                if self.error is not None:
                    return
                try:
                    self._ship_locked()
                except Exception as error:  # a dead child, or a bug: stop the writes either way
                    self._fail(error)
                    return

    def _ship_locked(self) -> None:
        """Send every kind's queued records; a child that has exited fails even when there is
        nothing to send (a quiet market must not hide it). Caller holds ``_lock``."""
        if self._child.poll() is not None:
            raise LandingProcessError(f"landing process exited with {self._child.returncode}")
        for index, outlet in enumerate(self._outlets):
            lines = outlet.take()
            if lines:
                self._send(_HEADER.pack(_LINES, index, len(lines)))
                self._send(lines)

    def _send(self, data: bytes | bytearray) -> None:
        # A blocking write: the kernel wakes it as the child reads. A child that stops reading
        # is found by _stalled, which kills it so that this write ends (broken pipe).
        self._sending_since = time.monotonic()
        try:
            write_all(self._stdin, data)
        finally:
            self._sending_since = None

    def _stalled(self) -> bool:
        """Whether a send has waited on the child for ``stall_timeout_s``; if so the landing
        fails and the child is killed (it has stopped reading: a hung disk, or stopped)."""
        since = self._sending_since
        if since is None or time.monotonic() - since < self.stall_timeout_s:
            return False
        self._fail(
            LandingProcessError(f"the landing process took no input for {self.stall_timeout_s:g} s")
        )
        self._child.kill()
        return True

    def _acquire(self) -> None:
        """Take ``_lock``. A send holding it past ``stall_timeout_s`` fails the landing and has
        its child killed (see _stalled), which ends the send and frees the lock."""
        while not self._lock.acquire(timeout=min(1.0, self.stall_timeout_s)):
            self._stalled()

    def _request(self, op: int) -> Any:
        self._ship_locked()
        self._send(_HEADER.pack(op, 0, 0))
        return self._answer(CLOSE_TIMEOUT_S)["sealed" if op == _ROTATE else "flushed"]

    def _answer(self, timeout_s: float) -> dict[str, Any]:
        ready, _, _ = select.select([self._stdout], [], [], timeout_s)
        if not ready:
            raise LandingProcessError(f"no answer from the landing process in {timeout_s:.0f} s")
        line = self._stdout.readline()
        if not line:
            self._reap()
            raise LandingProcessError(f"landing process exited with {self._child.returncode}")
        answer = json.loads(line)
        if "error" in answer:
            raise LandingProcessError(f"landing process: {answer['error']}")
        return answer

    def _fail(self, error: BaseException) -> LandingProcessError:
        if self.error is None:
            message = f"landing process {self._child.pid} under {self.root} failed: {error}"
            self.error = LandingProcessError(message)
            for outlet in self._outlets:
                outlet.failure = self.error
        return self.error

    def _reap(self) -> None:
        try:
            self._child.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


# -- the child --------------------------------------------------------------------------------


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
    # After each message the writers' poll writes what arrived (fsync and rotation when due).
    tick_s = min(0.25, options["flush_every_s"], options["rotate_every_s"])
    next_poll = time.monotonic() + tick_s
    while True:
        readable, _, _ = select.select([stdin], [], [], max(0.0, next_poll - time.monotonic()))
        if readable:
            header, whole = _read_exactly(stdin, _HEADER.size)
            if not whole:  # end of file: the serving process closed the pipe, or died
                break
            op, kind, length = _HEADER.unpack(header)
            body, whole = _read_exactly(stdin, length)
            if op == _LINES:
                # Cut short when the serving process died while sending: its whole lines land.
                writers[kind].write_lines(body if whole else body[: body.rfind(b"\n") + 1])
            if not whole:
                break
            if op == _FLUSH:
                for writer in writers:
                    writer.flush()
                _answer(stdout, {"flushed": True})
            elif op == _ROTATE:
                sealed = [str(path) for writer in writers for path in writer.rotate()]
                _answer(stdout, {"sealed": sealed})
            elif op != _LINES:
                raise ValueError(f"unknown landing message {op}")
        if readable or time.monotonic() >= next_poll:
            for writer in writers:
                writer.poll()
            next_poll = time.monotonic() + tick_s
    for writer in writers:
        writer.close()
    _answer(stdout, {"sealed": [str(path) for writer in writers for path in writer.sealed]})


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
    """``python -m streaming.landing OPTIONS_JSON`` (started by :class:`LandingProcess`)."""
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
