"""One market kind's writing end in the serving process: records queued, encoded in batches.

Records are queued and encoded ENCODE_BATCH at a time, in one call (see
:mod:`streaming.landing.process`, whose sender thread ships the lines to the landing child).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import msgspec

ENCODE_BATCH = 256


class LandingProcessError(RuntimeError):
    """The landing child failed to start, went away, or answered with an error."""


def _drop(record: msgspec.Struct) -> None:
    """Where a paused outlet's records go."""


class LandingOutlet:
    """Where one kind's records go: ``write`` queues them (see ``LandingProcess``).

    While landing is paused the outlet drops what is written (:meth:`drop`), or holds it aside
    (:meth:`hold`) while the trades it missed are landed first (:meth:`land_now`). These switches
    are made on the writing thread, between two writes, so each record is on one side of them.
    """

    __slots__ = (
        "_append", "_broken", "_lock", "buffer", "encode_lines", "failure", "held", "kind",
        "records",
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
        self.held: list[msgspec.Struct] | None = None  # written while held aside

    @property
    def landing(self) -> bool:
        """Whether what is written now is queued to land (not dropped, not held)."""
        return self._append == self.records.append

    def drop(self) -> None:
        """Drop what is written from now on (what was queued before still ships)."""
        self._append = _drop
        self.held = None

    def hold(self) -> list[msgspec.Struct]:
        """Keep what is written from now on aside, in the returned list, until :meth:`land`."""
        self.held = []
        self._append = self.held.append
        return self.held

    def land_now(self, records: Iterable[msgspec.Struct]) -> None:
        """Queue ``records`` to land, ahead of anything written after this call."""
        self.records.extend(records)

    def land(self) -> None:
        """Queue what was held aside, then what is written from now on."""
        if self.held is not None:
            self.records.extend(self.held)
            self.held = None
        self._append = self.records.append

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
