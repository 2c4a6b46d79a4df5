"""The sidecar's L2 book capture: one :class:`BookRecorder` per instrument of a venue whose depth
stream it keeps, the lines they make sent to landing and to the instrument's live ``depth``
features (:class:`~trading_assets.lib.features.depth.DepthFeatures`, the batch path's class fed
the same lines, so live and batch rows agree), and the REST snapshots they ask for.

The feed hands every depth update to :meth:`BookCapture.on_update` (on the event loop). A
recorder without a synced book asks for a REST snapshot; :meth:`BookCapture.run` fetches it,
at most one request in flight per instrument and, after a failure or a snapshot that did not
bridge the buffered updates, after a growing pause (``RETRY_S``). While the landing drops what
it is handed (paused for disk space), every recorder pauses: the segment ends, the book is kept,
and the first update after landing resumes starts a new segment from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge

from streaming.book.recorder import BookLine, BookRecorder
from streaming.landing import BOOK_SNAPSHOTS_KIND, BOOK_UPDATES_KIND, LandingProcess
from streaming.records import DepthSnapshot, DepthUpdate
from streaming.venues.binance.client import AsyncBinanceRestClient
from streaming.venues.binance.parse import parse_rest_depth
from streaming.venues.retry import RetryPolicy
from trading_assets.lib.book.lines import BookDiff
from trading_assets.lib.book.rebuild import Book, levels_of
from trading_assets.lib.features.depth import DepthFeatures
from trading_assets.lib.features.incremental import FeatureRow
from trading_assets.lib.instruments import instrument_id, parse_instrument

log = logging.getLogger(__name__)

DEPTH_CHANNELS: dict[str, tuple[str, ...]] = {"BINANCE": ("depth@100ms",)}
"""Per venue whose depth stream the sidecar keeps and lands (Binance spot's diff-depth
procedure), the channels it subscribes for it."""
SNAPSHOT_LIMIT = 1000  # levels a side in each REST snapshot (request weight 50 on Binance)
RETRY_S = (1.0, 30.0)  # the first pause before asking a snapshot again, and the longest
TICK_S = 0.1  # how often the snapshot task looks for a recorder that needs one


def recorded(instruments: Sequence[str]) -> list[str]:
    """The instruments whose book the sidecar records."""
    return [i for i in instruments if parse_instrument(i)[0] in DEPTH_CHANNELS]


class BookMetrics:
    """The ``sidecar_book_*`` metrics: lines landed, segments ended and why, sync state."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.lines = Counter("sidecar_book_lines", "L2 book lines handed to landing",
                             ["symbol", "kind"], registry=r)  # fmt: skip
        self.gaps = Counter("sidecar_book_gaps", "L2 book segments ended by a gap (a broken diff "
                            "chain, or landing paused)", ["symbol"], registry=r)  # fmt: skip
        self.snapshot_failures = Counter(
            "sidecar_book_snapshot_failures", "REST depth snapshots that failed or did not bridge",
            ["symbol"], registry=r,
        )  # fmt: skip
        self.recording = Gauge("sidecar_book_recording", "1 while a book segment is being landed",
                               ["symbol"], registry=r)  # fmt: skip


class BookCapture:
    """Every recorded instrument's book (see the module); ``instruments`` outside
    :data:`DEPTH_CHANNELS` are left out."""

    def __init__(
        self,
        instruments: Sequence[str],
        landing: LandingProcess,
        rest_base_urls: Mapping[str, str],
        registry: CollectorRegistry,
        snapshot_every_s: float = 60.0,
        rest_retry: RetryPolicy | None = None,
    ) -> None:
        self.recorders = {i: BookRecorder(parse_instrument(i)[1], snapshot_every_s)
                          for i in recorded(instruments)}  # fmt: skip
        self.features = {i: DepthFeatures(i) for i in self.recorders}
        self.metrics = BookMetrics(registry)
        self._updates = landing.outlet(BOOK_UPDATES_KIND)
        self._snapshots = landing.outlet(BOOK_SNAPSHOTS_KIND)
        self._landing = True  # whether the landing takes lines (the outlets are not dropping)
        self._rest_base_urls = dict(rest_base_urls)
        self._rest_retry = rest_retry
        self._retry_s = dict.fromkeys(self.recorders, RETRY_S[0])
        self._not_before = dict.fromkeys(self.recorders, 0.0)  # time.monotonic()
        self._was_recording = dict.fromkeys(self.recorders, False)
        # Rows closed by the snapshot task (off the feed's path), for the sidecar to take.
        self.pending_rows: list[FeatureRow] = []

    def book_readers(self) -> dict[str, Callable[[], Book | None]]:
        """Per recorded instrument, a reader of its integer book as landed (None: not synced)."""
        return {i: partial(_book_of, features) for i, features in self.features.items()}

    def on_update(self, update: DepthUpdate) -> list[FeatureRow]:
        """Feed one depth update to its instrument's recorder and land what it makes; the
        ``depth`` rows of the seconds it closed."""
        instrument = instrument_id(update.venue, update.symbol)
        recorder = self.recorders.get(instrument)
        if recorder is None:
            return []
        landing = self._updates.landing
        rows = self._switch(landing, update.receive_ns) if landing is not self._landing else []
        rows += self._took(instrument, recorder, recorder.on_update(update), update.receive_ns)
        return rows

    def on_snapshot(self, instrument: str, snapshot: DepthSnapshot) -> list[FeatureRow]:
        """Load a REST snapshot into ``instrument``'s recorder and land what it makes; the
        ``depth`` rows of the seconds it closed."""
        recorder = self.recorders[instrument]
        return self._took(instrument, recorder, recorder.on_snapshot(snapshot), snapshot.receive_ns)

    def take_pending(self) -> list[FeatureRow]:
        """The rows the snapshot task closed since the last call."""
        rows, self.pending_rows = self.pending_rows, []
        return rows

    def close_until(self, now_ns: int) -> list[FeatureRow]:
        """Every instrument's ``depth`` rows of the seconds ended by ``now_ns`` (the clock: no
        line received later can belong to them)."""
        return [row for f in self.features.values() for row in f.close_until(now_ns)]

    def _took(
        self, instrument: str, recorder: BookRecorder, lines: list[BookLine], now_ns: int
    ) -> list[FeatureRow]:
        """Land a recorder's lines and feed them to the live features."""
        features = self.features[instrument]
        rows: list[FeatureRow] = []
        if lines:
            self._land(instrument, lines)
            for line in lines:
                rows += features.on_line(levels_of(line))
        if self._was_recording[instrument] and not recorder.recording:
            rows += features.lose(now_ns)  # the segment ended here, as its next sync will say
        self._show(instrument, recorder)
        return rows

    async def run(self) -> None:
        """Fetch the REST snapshots the recorders ask for, until cancelled."""
        clients = {
            venue: AsyncBinanceRestClient(url, retry=self._rest_retry)
            for venue, url in self._rest_base_urls.items()
            if venue in DEPTH_CHANNELS
        }
        try:
            while True:
                for instrument, recorder in self.recorders.items():
                    if recorder.needs_snapshot and time.monotonic() >= self._not_before[instrument]:
                        await self._fetch(instrument, recorder, clients)
                await asyncio.sleep(TICK_S)
        finally:
            for client in clients.values():
                await client.aclose()

    async def _fetch(
        self,
        instrument: str,
        recorder: BookRecorder,
        clients: Mapping[str, AsyncBinanceRestClient],
    ) -> None:
        venue, symbol = parse_instrument(instrument)
        try:
            raw = await clients[venue].depth(symbol, SNAPSHOT_LIMIT)
            snapshot = parse_rest_depth(raw, symbol, time.time_ns())
        except Exception as error:  # the venue's trouble: asked again later
            self._failed(instrument, f"depth snapshot failed: {error}")
            return
        self.pending_rows += self.on_snapshot(instrument, snapshot)
        if recorder.needs_snapshot:  # older than the buffered updates: a newer one is needed
            self._failed(instrument, f"snapshot at update {snapshot.last_update_id} did not "
                         "bridge the buffered updates")  # fmt: skip
        else:
            self._retry_s[instrument] = RETRY_S[0]

    def _failed(self, instrument: str, why: str) -> None:
        pause = self._retry_s[instrument]
        log.warning("%s book: %s; asking again in %g s", instrument, why, pause)
        self.metrics.snapshot_failures.labels(instrument).inc()
        self._not_before[instrument] = time.monotonic() + pause
        self._retry_s[instrument] = min(pause * 2, RETRY_S[1])

    def _switch(self, landing: bool, now_ns: int) -> list[FeatureRow]:
        """Landing paused or resumed: every recorder pauses or resumes with it (a paused one's
        live features are not covered either: batch will not have its lines)."""
        self._landing = landing
        rows: list[FeatureRow] = []
        for instrument, recorder in self.recorders.items():
            if landing:
                recorder.resume()
            else:
                recorder.pause("landing paused", now_ns)
                rows += self._took(instrument, recorder, [], now_ns)
        return rows

    def _land(self, instrument: str, lines: list[BookLine]) -> None:
        diffs = 0
        for line in lines:
            if type(line) is BookDiff:
                self._updates.write(line)
                diffs += 1
            else:
                self._snapshots.write(line)
        if diffs:
            self.metrics.lines.labels(instrument, BOOK_UPDATES_KIND).inc(diffs)
        if diffs < len(lines):
            self.metrics.lines.labels(instrument, BOOK_SNAPSHOTS_KIND).inc(len(lines) - diffs)

    def _show(self, instrument: str, recorder: BookRecorder) -> None:
        recording = recorder.recording
        if recording is not self._was_recording[instrument]:
            self._was_recording[instrument] = recording
            self.metrics.recording.labels(instrument).set(int(recording))
            if not recording:
                self.metrics.gaps.labels(instrument).inc()


def _book_of(features: DepthFeatures) -> Book | None:
    return features.book
