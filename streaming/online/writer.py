"""The sidecar's micro-batching pusher into the Feast online store.

:class:`OnlineFeatureWriter` takes the live feature rows off the hot path (``submit`` appends to a
queue under a lock) and a background thread pushes them through the Feast push sources of the
repository (``*_push_source``) into every feature view the source feeds, as
``FeatureStore.push(..., to=PushMode.ONLINE)`` does. Only the newest row per symbol and push source
matters online, so each drained batch is collapsed to it before pushing, and a full queue is
folded the same way instead of blocking the caller or growing without bound.

The rows go to the provider's ``online_write_batch`` as Feast's own value protos
(``python_values_to_proto_values`` with each feature's type), the step ``push`` ends in. ``push``
first builds a pandas DataFrame, an Arrow table and a NumPy column per feature: about 7 ms of
Python per push, during which this thread holds the GIL against the sidecar's event loop, whose
prediction then waited for it (the tail of tick-to-prediction latency). The direct write holds it
for a small fraction of that and stores the same bytes (``tests/integration/test_online_adapter``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feast.data_source import PushSource
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values

from trading_assets.lib.feature_store.spec import ENTITY
from trading_assets.lib.features import ALL_GROUPS, FeatureRow

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.value_type import ValueType

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# What an online store's ``online_write_batch`` takes per row: key, values, event and created time.
_OnlineRow = tuple[EntityKey, dict[str, Value], dt.datetime, dt.datetime | None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnlineWriterStats:
    """Counters of an :class:`OnlineFeatureWriter`; every submitted row ends in exactly one of
    written, coalesced, superseded, skipped or rejected (or is still pending).

    ``rows_written``: rows pushed and accepted by every push source they went to.
    ``rows_coalesced``: rows dropped because the queue was full and a newer row of the same symbol
    (and feature set) was queued; non-zero means the writer fell behind. ``rows_superseded``: rows
    a newer row of the same symbol replaced within one batch, or older than what this writer
    already pushed (normal under load, nothing newer is lost online). ``rows_skipped``: rows with
    no value (all absent, None or NaN) for any push source's features. ``rows_rejected``: rows
    holding a value that is not a number (logged, never retried). ``batches``: successful batch
    pushes (one per drained batch, however many push calls it took); ``errors``: failed ones
    (their rows are retried with the next batch). ``last_write_latency_s``: duration of the last
    successful batch push, DataFrame building included.
    """

    rows_submitted: int
    rows_written: int
    rows_coalesced: int
    rows_superseded: int
    rows_skipped: int
    rows_rejected: int
    rows_pending: int
    batches: int
    errors: int
    last_write_latency_s: float | None
    last_error: str | None


class OnlineFeatureWriter:
    """Pushes live :class:`FeatureRow` s to the online store from a background thread.

    ``views``: the feature views kept fresh; each must read a Feast push source, and the writer
    pushes to those sources. A push reaches every view its source feeds, so its DataFrame carries
    the features of all of them: a row goes to each push source it has a value for, and a feature
    of that source which the row lacks, or holds as None or NaN, is stored as missing. A row with
    no value for any of a source's features is not pushed there (Feast ignores such a push), so
    its views keep their older row and older event time, which the reader reports as such.
    ``max_batch_rows``: a batch is pushed as soon as this many rows are queued, and no push
    carries more rows. ``flush_every_s``: otherwise queued rows wait at most this long.
    ``max_queue_rows``: beyond this many queued rows the queue keeps only the newest row per
    symbol (memory is then bounded by the number of symbols). ``error_backoff_s``: the wait after
    a failed push before retrying. The store should not be shared with threads that write to it.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        views: Sequence[str] = ALL_GROUPS,
        max_batch_rows: int = 1_000,
        flush_every_s: float = 0.05,
        max_queue_rows: int = 100_000,
        error_backoff_s: float = 0.5,
    ) -> None:
        if max_batch_rows < 1 or max_queue_rows < 1:
            raise ValueError("max_batch_rows and max_queue_rows must be at least 1")
        self._store = store
        self._columns = push_sources(store, views)
        # Per push source, the views it feeds with their features and value types, resolved once.
        self._targets = push_targets(store, self._columns)
        self._entity_keys: dict[str, EntityKey] = {}
        self._max_batch_rows = max_batch_rows
        self._flush_every_s = flush_every_s
        self._max_queue_rows = max_queue_rows
        self._error_backoff_s = error_backoff_s
        # Event time last pushed per push source and symbol: a row older than that is not pushed,
        # as Redis' own dedup does, so sqlite (which overwrites blindly) behaves the same.
        self._stored_us: dict[str, dict[str, int]] = {name: {} for name in self._columns}
        self._carried: list[FeatureRow] = []  # newest rows of a failed batch, retried next

        self._cond = threading.Condition()
        self._queue: deque[FeatureRow] = deque()
        self._newest: dict[tuple[str, tuple[str, ...]], FeatureRow] = {}  # when the queue is full
        self._submitted = self._written = self._coalesced = 0
        self._superseded = self._skipped = self._rejected = self._batches = self._errors = 0
        self._last_latency: float | None = None
        self._last_error: str | None = None
        self._durable = 0  # every row submitted before this count is written or resolved
        self._flush_target = 0
        self._retry_at = 0.0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="online-feature-writer", daemon=True)
        self._thread.start()

    def submit(self, row: FeatureRow) -> None:
        """Queue one row (never blocks on the store; amortised O(1))."""
        with self._cond:
            if self._closing:
                raise RuntimeError("OnlineFeatureWriter is closed")
            self._submitted += 1
            if self._newest or len(self._queue) >= self._max_queue_rows:
                if not self._newest:
                    # One O(n) fold per overflow, after n O(1) appends.
                    for queued in self._queue:
                        self._keep_newest(queued)
                    self._queue.clear()
                self._keep_newest(row)
                self._cond.notify()
            else:
                self._queue.append(row)
                if len(self._queue) == self._max_batch_rows:
                    self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything submitted so far now; True once it is written, False on timeout
        (e.g. while the store is down) or when the writer has stopped."""
        with self._cond:
            target = self._submitted
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: self._durable >= target or not self._thread.is_alive(), timeout
            )
            return self._durable >= target

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the thread; True when everything submitted was written. A final
        write that fails is not retried: its rows are dropped (and logged)."""
        flushed = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return flushed

    def __enter__(self) -> OnlineFeatureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> OnlineWriterStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            resolved = (
                self._written + self._coalesced + self._superseded + self._skipped + self._rejected
            )
            return OnlineWriterStats(
                rows_submitted=self._submitted,
                rows_written=self._written,
                rows_coalesced=self._coalesced,
                rows_superseded=self._superseded,
                rows_skipped=self._skipped,
                rows_rejected=self._rejected,
                rows_pending=self._submitted - resolved,
                batches=self._batches,
                errors=self._errors,
                last_write_latency_s=self._last_latency,
                last_error=self._last_error,
            )

    def _keep_newest(self, row: FeatureRow) -> None:
        # Keyed by the feature names too, so rows of different groups never replace each other.
        key = (row.symbol, tuple(row.values))
        kept = self._newest.get(key)
        if kept is not None:
            self._coalesced += 1
            if row.event_timestamp_us < kept.event_timestamp_us:
                return
        self._newest[key] = row

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            with self._cond:
                self._cond.notify_all()  # a waiting flush() sees the thread gone

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._wait_for_work()
                queued, newest = self._queue, self._newest
                self._queue, self._newest = deque(), {}
                taken = self._submitted  # the whole queue is taken: every row before this
                closing = self._closing
            rows = [*self._carried, *queued, *newest.values()]
            if rows:
                written = self._write(rows, taken)
                if closing and not written:
                    log.error("online writer closing: %d rows not written", len(self._carried))
                    return
            elif closing:
                return

    def _wait_for_work(self) -> None:
        deadline = max(time.monotonic() + self._flush_every_s, self._retry_at)
        while not self._closing:
            now = time.monotonic()
            if now >= deadline:
                return
            if now >= self._retry_at and (
                len(self._queue) >= self._max_batch_rows
                or self._newest
                or self._flush_target > self._durable
            ):
                return
            self._cond.wait(deadline - now if now >= self._retry_at else self._retry_at - now)

    def _write(self, rows: list[FeatureRow], taken: int) -> bool:
        """Push the newest row per symbol to every push source; True on success."""
        by_source, chosen, skipped = self._newest_per_source(rows)
        superseded = len(rows) - len(chosen) - skipped
        rejected = self._non_numeric(by_source)
        if rejected:
            chosen = [row for row in chosen if id(row) not in rejected]
            for newest in by_source.values():
                for symbol in [s for s, row in newest.items() if id(row) in rejected]:
                    del newest[symbol]
            with self._cond:
                self._rejected += len(rejected)
        started = time.perf_counter()
        try:
            for name, newest in by_source.items():
                if newest:
                    self._push(name, list(newest.values()))
        except Exception as error:  # any store failure: keep the thread, retry the rows later
            with self._cond:
                first_of_streak = self._last_error is None
                self._errors += 1
                self._superseded += superseded
                self._skipped += skipped
                self._last_error = f"{type(error).__name__}: {error}"
                self._retry_at = time.monotonic() + self._error_backoff_s
            log.warning("online push of %d rows failed", len(chosen), exc_info=first_of_streak)
            self._carried = chosen
            return False
        latency = time.perf_counter() - started
        with self._cond:
            self._written += len(chosen)
            self._superseded += superseded
            self._skipped += skipped
            self._batches += 1
            self._last_latency = latency
            self._last_error = None
            self._durable = taken
            self._cond.notify_all()
        for name, newest in by_source.items():
            stored = self._stored_us[name]
            for symbol, row in newest.items():
                stored[symbol] = row.event_timestamp_us
        self._carried = []
        return True

    def _newest_per_source(
        self, rows: list[FeatureRow]
    ) -> tuple[dict[str, dict[str, FeatureRow]], list[FeatureRow], int]:
        """Per push source, the newest row of each symbol with a value for it and not older than
        what was pushed there already (a later row wins a tie); the distinct rows chosen for any
        source; how many rows had a value for no source.

        The rows are walked newest first (later rows first), so a row no newer than the one a
        source already kept is passed over without looking at its values, and a row's values
        are looked at only until the first present one: a batch of a replay's hundreds of rows
        per symbol costs a few dict lookups a row, not one per feature."""
        columns = self._columns
        by_source: dict[str, dict[str, FeatureRow]] = {name: {} for name in columns}
        stored_us = self._stored_us
        skipped = 0
        for row in reversed(rows):
            values, symbol, at = row.values, row.symbol, row.event_timestamp_us
            matched = False
            for name, names in columns.items():
                newest = by_source[name]
                kept = newest.get(symbol)
                if kept is not None and at <= kept.event_timestamp_us:
                    # Passed over here; whether it counts as skipped needs its values.
                    matched = matched or _has_value(values, names)
                    continue
                if not _has_value(values, names):
                    continue
                matched = True
                if kept is None:
                    stored = stored_us[name].get(symbol)
                    if stored is None or at >= stored:
                        newest[symbol] = row
                else:
                    newest[symbol] = row
            skipped += not matched
        chosen: dict[int, FeatureRow] = {}
        for newest in by_source.values():
            for row in newest.values():
                chosen[id(row)] = row
        return by_source, list(chosen.values()), skipped

    def _non_numeric(self, by_source: dict[str, dict[str, FeatureRow]]) -> set[int]:
        """Ids of rows holding a value that is no number for a source they go to: they are left
        out of every push, since retrying them would fail every batch after."""
        rejected: set[int] = set()
        for name, newest in by_source.items():
            names = self._columns[name]
            for row in newest.values():
                if id(row) not in rejected and not all(
                    _is_number(row.values.get(feature)) for feature in names
                ):
                    log.error("online row of %s rejected: non-numeric value", row.symbol)
                    rejected.add(id(row))
        return rejected

    def _push(self, source: str, rows: list[FeatureRow]) -> None:
        provider, config = self._store.provider, self._store.config
        for start in range(0, len(rows), self._max_batch_rows):
            chunk = rows[start : start + self._max_batch_rows]
            keys = [self._entity_key(row.symbol) for row in chunk]
            times = [_EPOCH + dt.timedelta(microseconds=row.event_timestamp_us) for row in chunk]
            for view, fields in self._targets[source]:
                # A view of a shared source keeps its row where this one has none of its values.
                names = [name for name, _ in fields]
                held = [
                    i
                    for i, row in enumerate(chunk)
                    if not all(_is_missing(row.values.get(name)) for name in names)
                ]
                if not held:
                    continue
                columns = [
                    python_values_to_proto_values(
                        [_float_or_nan(chunk[i].values.get(name)) for i in held], value_type
                    )
                    for name, value_type in fields
                ]
                by_name = dict(zip(names, columns, strict=True))
                data: list[_OnlineRow] = [
                    (keys[i], {name: column[j] for name, column in by_name.items()}, times[i], None)
                    for j, i in enumerate(held)
                ]
                provider.online_write_batch(config, view, data, progress=None)

    def _entity_key(self, symbol: str) -> EntityKey:
        key = self._entity_keys.get(symbol)
        if key is None:
            key = EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=symbol)])
            self._entity_keys[symbol] = key
        return key


def push_sources(store: FeatureStore, views: Sequence[str]) -> dict[str, list[str]]:
    """The push sources feeding ``views``, each with the features a push to it must carry: those
    of every view it feeds in the registry, since Feast writes a push to all of them."""
    sources: dict[str, None] = {}  # in the views' order
    for name in views:
        source = store.get_feature_view(name).stream_source
        if not isinstance(source, PushSource):
            raise ValueError(f"feature view {name!r} is not fed by a push source")
        sources[source.name] = None
    columns: dict[str, list[str]] = {}
    for source, targets in push_targets(store, sources).items():
        names = columns[source] = []
        for _, fields in targets:
            names.extend(name for name, _ in fields if name not in names)
    return columns


def push_targets(
    store: FeatureStore, sources: Iterable[str]
) -> dict[str, list[tuple[FeatureView, list[tuple[str, ValueType]]]]]:
    """Per push source, every feature view it feeds (what ``FeatureStore.push`` writes to), each
    with its features and their value types."""
    targets: dict[str, list[tuple[FeatureView, list[tuple[str, ValueType]]]]] = {
        name: [] for name in sources
    }
    for view in [*store.list_feature_views(), *store.list_stream_feature_views()]:
        source = view.stream_source
        if isinstance(source, PushSource) and source.name in targets:
            fields = [(f.name, f.dtype.to_value_type()) for f in view.features]
            targets[source.name].append((view, fields))
    return targets


def _has_value(values: dict[str, float | None], names: list[str]) -> bool:
    """Whether ``values`` holds a present value (neither None nor NaN) for any of ``names``."""
    for name in names:
        value = values.get(name)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return True
    return False


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _float_or_nan(value: float | None) -> float:
    # Feast stores a NaN of a Float64 feature as missing, replacing the previous value.
    return math.nan if value is None else float(value)
