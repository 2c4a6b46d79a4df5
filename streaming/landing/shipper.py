"""Shipping sealed landing segments to the landing location, for a Dagster side elsewhere.

The sidecar lands segments on its own disk (``TRADING_LANDING_DIR``); the Dagster side reads them
from the landing location (``TRADING_LANDING_URI``). Locally the two are the same folder and there
is nothing to ship. In production the location is an ``s3://`` prefix (the two sides may run on
different machines), and the shipper uploads every sealed segment under the landing folder to the
same key below it, ``<kind>/<SYMBOL>/<YYYY-MM-DD>/<stem>.jsonl``, once:

1. upload, in one atomic write (:func:`trading_assets.lib.storage.write_bytes_atomic`: on S3 a
   single PUT, or a multipart upload completed at once), so readers see the whole segment or
   nothing, and a crash mid-upload leaves no object;
2. record its key in the ledger, fsynced.

A crash between the two uploads the same bytes to the same key again on the next start, which no
reader can tell apart (a sealed segment never changes, and bronze rebuilds a day from its segments
by key). On start, and every ``interval_s`` after, the shipper ships whatever is sealed and not
in the ledger, each kind × symbol × day's segments oldest first (stems sort in write order).

The ledger is ``<landing dir>/.shipped-<digest of the location>.ledger``: one line per shipped
segment key, appended and fsynced. A torn last line (a crash while appending) is not a record: it
is cut off on open and its segment shipped again. There is one ledger per location, so a new
landing location receives every segment. A shipper holds an exclusive lock on its ledger while it
runs, so two never ship the same folder to the same location at once: a second one exits (status
2), and the sidecar's supervisor starts it again a little later.

Shipped segments stay in the landing folder: removing them (retention) is not done here yet, and
each scan lists the whole folder until it is.

``python -m streaming.landing.shipper`` ships until stopped (the sidecar runs it as a child, see
:mod:`streaming.landing.shipping`), printing its :class:`ShipperState` as a JSON line after each
pass and every second of a long one; ``--once`` ships the backlog and exits.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import fcntl
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streaming.landing.durable import fsync_directory, write_all
from trading_assets.lib import storage
from trading_assets.lib.lakehouse.landing_layout import (
    LandedSegment,
    is_remote,
    list_segments,
    local_root,
)
from trading_assets.lib.settings import ObjectStore, load_settings

INTERVAL_S = 1.0  # the sidecar seals a segment per symbol and kind about every 20 s
MAX_RETRY_S = 30.0  # the longest wait between attempts while the location keeps failing
REPORT_EVERY_S = 1.0
LEDGER_PREFIX = ".shipped-"  # hidden: no reader of the layout lists it
LEDGER_SUFFIX = ".ledger"
_PR_SET_PDEATHSIG = 1


class LedgerBusyError(RuntimeError):
    """Another shipper holds the ledger: it is shipping this folder to this location."""


@dataclass(frozen=True)
class ShipperState:
    """What a shipper has done, as its JSON line and the sidecar's metrics show it."""

    shipped: int = 0  # segments recorded as shipped in the ledger
    backlog: int = 0  # sealed segments not shipped yet, as of the newest scan
    shipped_bytes: int = 0  # bytes uploaded by this process
    errors: int = 0  # failed attempts (scans or uploads) of this process
    last_error: str | None = None  # the newest failure; None once a pass ships its whole backlog

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str | bytes) -> ShipperState:
        return cls(**json.loads(line))


def needs_shipping(landing_dir: Path | str, landing_uri: str) -> bool:
    """Whether the landing location is somewhere other than the landing folder itself."""
    if is_remote(landing_uri):
        return True
    return local_root(landing_uri).resolve() != Path(landing_dir).resolve()


def ledger_path(landing_dir: Path | str, landing_uri: str) -> Path:
    """The ledger of what ``landing_dir`` has shipped to ``landing_uri``."""
    digest = hashlib.sha256(landing_uri.rstrip("/").encode()).hexdigest()[:16]
    return Path(landing_dir) / f"{LEDGER_PREFIX}{digest}{LEDGER_SUFFIX}"


class Ledger:
    """The keys shipped, one line each, appended and fsynced; locked while open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise LedgerBusyError(f"another shipper holds {path}") from None
        if created:
            fsync_directory(path.parent)
        self.keys = self._read()

    def _read(self) -> set[str]:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0)
        complete = data.rfind(b"\n") + 1
        if complete < size:  # a crash while appending: that segment is shipped again
            os.ftruncate(self._fd, complete)
            os.fsync(self._fd)
        return set(data[:complete].decode().splitlines())

    def record(self, key: str) -> None:
        """Append ``key`` durably."""
        write_all(self._fd, key.encode() + b"\n")
        os.fsync(self._fd)
        self.keys.add(key)

    def close(self) -> None:
        os.close(self._fd)  # releases the lock

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Shipper:
    """Ships the sealed segments of ``source`` (a landing folder) to ``target``."""

    def __init__(self, source: Path, target: str, store: ObjectStore | None = None) -> None:
        self.source = Path(source)
        self.target = target.rstrip("/")
        self.store = store
        self.ledger = Ledger(ledger_path(self.source, self.target))
        self.state = ShipperState(shipped=len(self.ledger.keys))

    def close(self) -> None:
        self.ledger.close()

    def __enter__(self) -> Shipper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def backlog(self) -> list[LandedSegment]:
        """Sealed segments not in the ledger, every kind, oldest first within a partition."""
        kinds = sorted(
            entry.name
            for entry in os.scandir(self.source)
            if entry.is_dir() and not entry.name.startswith((".", "_"))
        )
        shipped = self.ledger.keys
        return [
            s for kind in kinds for s in list_segments(self.source, kind) if s.key not in shipped
        ]

    def ship_backlog(
        self,
        report: Callable[[ShipperState], None] = lambda state: None,
        stop: threading.Event | None = None,
    ) -> ShipperState:
        """One pass: ship the backlog (until ``stop`` is set or an upload fails); the state after.
        ``report`` gets the state every ``REPORT_EVERY_S`` of the pass."""
        try:
            pending = self.backlog()
        except OSError as error:
            return self._failed(error)
        self._update(backlog=len(pending))
        if pending:  # a long pass shows its backlog at once
            report(self.state)
        reported = time.monotonic()
        for index, segment in enumerate(pending):
            if stop is not None and stop.is_set():
                return self.state
            try:
                size = self._ship(segment)
            except Exception as error:  # the location is down or refuses: retried next pass
                return self._failed(error)
            self._update(
                shipped=len(self.ledger.keys),
                backlog=len(pending) - index - 1,
                shipped_bytes=self.state.shipped_bytes + size,
            )
            if time.monotonic() - reported >= REPORT_EVERY_S:
                report(self.state)
                reported = time.monotonic()
        self._update(last_error=None)
        return self.state

    def _ship(self, segment: LandedSegment) -> int:
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:
            return 0  # removed since the scan: nothing left to ship
        storage.write_bytes_atomic(storage.join(self.target, segment.key), data, self.store)
        self.ledger.record(segment.key)
        return len(data)

    def _failed(self, error: BaseException) -> ShipperState:
        message = f"{type(error).__name__}: {error}"
        return self._update(errors=self.state.errors + 1, last_error=message)

    def _update(self, **changes: object) -> ShipperState:
        self.state = dataclasses.replace(self.state, **changes)  # type: ignore[arg-type]
        return self.state

    def run(
        self,
        stop: threading.Event,
        report: Callable[[ShipperState], None],
        interval_s: float = INTERVAL_S,
        parent_pid: int | None = None,
    ) -> None:
        """Ship every ``interval_s`` until ``stop`` is set (or the parent process is gone); after
        a failure, wait twice as long each time, up to ``MAX_RETRY_S``."""
        delay = interval_s
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            state = self.ship_backlog(report, stop)
            report(state)
            delay = min(delay * 2, MAX_RETRY_S) if state.last_error else interval_s
            stop.wait(delay)


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM from the kernel when the parent dies: a killed sidecar leaves no shipper behind
    (its successor's would wait for the ledger)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def _print_state(state: ShipperState) -> None:
    print(state.to_json(), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streaming.landing.shipper``: 0 when done (``--once``: nothing left to ship),
    1 when the backlog could not be shipped, 2 when another shipper holds the ledger."""
    settings = load_settings()
    parser = argparse.ArgumentParser(
        prog="python -m streaming.landing.shipper",
        description="Ship sealed landing segments to the landing location, each once.",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=settings.landing_dir,
        help="the landing folder (default: TRADING_LANDING_DIR)",
    )
    parser.add_argument(
        "--target",
        default=settings.landing_uri,
        help="the landing location (default: TRADING_LANDING_URI)",
    )
    parser.add_argument("--once", action="store_true", help="ship the backlog and exit")
    parser.add_argument("--interval-s", type=float, default=INTERVAL_S)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    if not needs_shipping(args.source, args.target):
        print(f"nothing to ship: {args.target} is the landing folder", file=sys.stderr)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # the upload under way finishes
        signal.signal(sig, lambda *_: stop.set())
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    args.source.mkdir(parents=True, exist_ok=True)
    try:
        shipper = Shipper(args.source, args.target)
    except LedgerBusyError as error:
        print(f"{error}: it is shipping {args.source}", file=sys.stderr)
        return 2
    with shipper:
        if args.once:
            state = shipper.ship_backlog(_print_state, stop)
            _print_state(state)
            return 1 if state.last_error or state.backlog else 0
        shipper.run(stop, _print_state, args.interval_s, args.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
