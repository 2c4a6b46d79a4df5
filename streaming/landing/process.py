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

The protocol between the two, and the child's side, are in :mod:`streaming.landing.child`.

Durability: a line reaches the child about ``send_every_s`` after ``write``, is written to its
segment right away (without fsync) and fsynced every ``flush_every_s``. If the serving process is
killed, the child still lands everything it received and seals it (its stdin closes), so a SIGKILL
loses at most the last ``send_every_s`` of lines, which the restarted ingest gap-fills; a starting
child first waits for such a predecessor to finish. If the child dies, the serving process's next
``write`` or ``poll`` raises :class:`LandingProcessError`: landing no longer works, so the sidecar
stops instead of serving on data it cannot land. A full disk is not such a failure: the child
pauses (see :meth:`LandingProcess.pause`), and :mod:`streaming.landing.guard` re-fetches the trades
it could not land once there is room again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec

from streaming.landing.child import FLUSH, HEADER, LINES, MARKET_KINDS, PAUSE, RESUME, ROTATE, STATE
from streaming.landing.durable import write_all
from streaming.landing.outlet import ENCODE_BATCH, LandingOutlet, LandingProcessError
from streaming.landing.status import LandingStatus
from streaming.landing.writer import LandingWriterClosedError

__all__ = ["ENCODE_BATCH", "MARKET_KINDS", "LandingOutlet", "LandingProcess", "LandingProcessError"]

SEND_EVERY_S = 0.01
PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process
START_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 120.0
# A child that takes no input for this long (stuck on its disk) counts as failed: the sidecar
# stops rather than buffer without bound.
STALL_TIMEOUT_S = 60.0


class LandingProcess:
    """Land the market kinds (trades, book tickers) through one child process (see module).

    ``outlet(kind).write(record)`` queues on the calling thread, which must be the only one
    writing that kind. ``poll``, ``flush``, ``rotate``, ``pause``, ``resume``, ``child_paused``
    and ``close`` can be called from any thread, like ``LandingWriter``'s, so
    :func:`streaming.landing.maintain` drives both. ``status`` is what the sidecar reports of
    the landing's disk (kept up to date by :class:`~streaming.landing.guard.LandingGuard`).
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
        self.status = LandingStatus(self.root)
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

    @property
    def outlets(self) -> tuple[LandingOutlet, ...]:
        return tuple(self._outlets)

    def poll(self) -> None:
        """Ship what is queued now; raise if the child has failed (nothing to do once closed)."""
        if not self._closed:
            self._checked(self._ship_locked)

    def flush(self) -> None:
        """Ship everything queued and have the child fsync it (durable when this returns)."""
        self._checked(lambda: self._request(FLUSH))

    def rotate(self) -> list[Path]:
        """Ship everything queued and seal every open segment; return the sealed paths."""
        return [Path(path) for path in self._checked(lambda: self._request(ROTATE))["sealed"]]

    def pause(self, reason: str) -> str:
        """Ship everything queued; the child lands what fits, seals every segment whole and
        drops what arrives until :meth:`resume`. Returns why it is paused (a full disk it met
        first, or ``reason``)."""
        return self._checked(lambda: self._request(PAUSE, reason.encode()))["paused"]

    def resume(self) -> None:
        """Have a paused child land again what arrives from now on."""
        self._checked(lambda: self._request(RESUME))

    def child_paused(self) -> str | None:
        """Why the child is paused (it pauses by itself when its disk is full), None if not."""
        return self._checked(lambda: self._request(STATE))["paused"]

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
                self._send(HEADER.pack(LINES, index, len(lines)))
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

    def _request(self, op: int, body: bytes = b"") -> dict[str, Any]:
        self._ship_locked()
        self._send(HEADER.pack(op, 0, len(body)) + body)
        return self._answer(CLOSE_TIMEOUT_S)

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
