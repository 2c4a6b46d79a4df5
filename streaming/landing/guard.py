"""Landing on a filling disk: pause before it is full, keep serving, and lose no trade.

The sidecar keeps serving predictions from memory whatever its disk does; only landing stops.
:class:`LandingGuard` measures the landing folder's free space every ``tick_s`` and asks the
landing child whether a write met a full disk (the child pauses by itself then). Below the
minimum (``TRADING_LANDING_MIN_FREE``), or once the child has paused, market data stops landing:
the outlets drop what the sidecar hands them, and the child lands what fits, seals every segment
whole and drops the rest. ``/ready`` says so and ``/metrics`` shows the free space.

Every trade is still recoverable, since the exchange serves trades by id. Landed trades of a
symbol are always one contiguous run of ids, from its run's start (recorded by
:meth:`LandingGuard.record_run_starts` before any of them lands) to its last landed trade. Once
free space is back above the minimum with a margin, the guard resumes the child, holds the
sidecar's new trades aside, fetches the missed ids (after the last landed one, up to the last
trade handed to landing before the hold) over REST and lands them, then the held trades, then
the live ones: the run stays contiguous, so a restart at any point resumes where it ends
(:func:`~streaming.landing.run_starts.resume_points`). Book tickers cannot be fetched again: those
of the pause are not landed. Predictions keep landing in the room left below the minimum.

A venue that serves no trade history (Coinbase, Kraken) cannot have its missed trades fetched:
its instruments resume with a hole in their run, and the other instruments are caught up as
usual. Such a hole, and ids the exchange itself does not serve, is a :class:`LandingGap`:
logged (which ids, which stretch of time), kept in ``landing.status.unfilled_gaps`` and counted
per instrument on ``sidecar_landing_unfilled_gaps`` / ``sidecar_landing_unfilled_trades``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sized
from pathlib import Path

import msgspec

from streaming.ingest.gapfill import MissingTradesError, trade_chunks
from streaming.landing.disk import MinFree, measure
from streaming.landing.process import LandingProcess
from streaming.landing.run_starts import record_run_starts, resume_points
from streaming.landing.status import LandingGap
from streaming.metrics import SidecarMetrics
from streaming.records import Trade
from streaming.venues import venue_of
from streaming.venues.base import TradeHistory
from streaming.venues.retry import RetryPolicy
from trading_assets.lib.lakehouse.landing_layout import (
    TRADES_KIND,
    last_complete_record,
    list_segments,
)

log = logging.getLogger(__name__)

TICK_S = 0.5
RETRY_S = (2.0, 60.0)  # first and longest wait before resuming again after a failed resume
MAX_HELD_TRADES = 500_000  # new trades held aside while catching up, beyond which it gives up
CATCH_UP_CHUNK = 10_000


class CatchUpAbandoned(RuntimeError):
    """A resume gave up (the disk filled again, or the exchange could not serve)."""


class LandingGuard:
    """Pauses market-data landing on a filling disk and recovers what it missed (see module).

    ``metrics.messages`` tells the newest trade the sidecar handed to landing per instrument
    (the sidecar sets it for every trade it lands); the guard shows the landing's state on the
    ``sidecar_landing_*`` gauges and in ``landing.status``. Missed trades are fetched from each
    venue's REST base URL in ``rest_base_urls`` (by venue name; one string: Binance spot's).
    """

    def __init__(
        self,
        landing: LandingProcess,
        rest_base_urls: str | Mapping[str, str],
        metrics: SidecarMetrics,
        min_free: MinFree,
        tick_s: float = TICK_S,
        rest_retry: RetryPolicy | None = None,
    ) -> None:
        self.landing = landing
        self.root: Path = landing.root
        self.status = landing.status
        self.status.min_free = min_free
        self.metrics = metrics
        self.tick_s = tick_s
        self.run_starts: dict[str, int] = {}  # first trade id of this run, per symbol
        self._unrecorded: dict[str, int] = {}  # of those, the ones not on disk yet
        self._recording = asyncio.Lock()  # one read-merge-replace of the file at a time
        self._landed: dict[str, int] = {}  # last landed trade id per symbol, while paused
        self._given_up: dict[str, LandingGap] = {}  # newest unfillable gap per symbol
        self._rest_retry = rest_retry
        self._rest_base_urls = (
            {"BINANCE": rest_base_urls} if isinstance(rest_base_urls, str) else dict(rest_base_urls)
        )
        self._retry_s = RETRY_S[0]
        self._resume_after = 0.0  # time.monotonic() before which no resume is tried
        self._trades = landing.outlet(TRADES_KIND)
        # What is not fetched again after a pause (book tickers, L2 book lines): dropped while
        # paused, landed again as soon as a resume starts.
        self._unfetched = tuple(o for o in landing.outlets if o.kind != TRADES_KIND)

    async def run(self) -> None:
        """Check every ``tick_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.tick_s)

    async def check(self) -> None:
        """Measure, pause or resume as the disk and the child say, and show the state."""
        status = self.status
        status.space = await asyncio.to_thread(measure, self.root)
        await self._record_unrecorded_starts()
        child_paused = await asyncio.to_thread(self.landing.child_paused)
        # Book tickers and book lines land again as soon as a resume starts; trades once it has
        # caught up.
        landing = status.paused is None or self._unfetched[0].landing
        if child_paused is not None and landing:
            await self._pause(child_paused)
        elif status.low and landing:
            await self._pause("free space below the minimum")
        elif status.paused is not None and self._may_resume():
            await self._resume(child_paused is not None)
        self._show()

    async def record_run_starts(self, starts: Mapping[str, int]) -> None:
        """Record each symbol's first trade id of this run before any of its trades lands (the
        feed awaits this). On a full disk they are kept and recorded as soon as there is room;
        a restart meanwhile would resume those symbols afresh (``/ready`` says so)."""
        self.run_starts.update(starts)
        self._unrecorded.update(starts)
        await self._record_unrecorded_starts()

    async def _record_unrecorded_starts(self) -> None:
        async with self._recording:
            pending = dict(self._unrecorded)
            if not pending:
                return
            try:
                await asyncio.to_thread(record_run_starts, self.root, pending)
            except OSError as error:  # kept, and tried again every tick
                if not self.status.unrecorded_starts:
                    log.error("run starts %s not recorded under %s: %s", pending, self.root, error)
            else:
                for symbol, start in pending.items():
                    if self._unrecorded.get(symbol) == start:
                        del self._unrecorded[symbol]
            self.status.unrecorded_starts = tuple(sorted(self._unrecorded))

    # -- pausing and resuming -------------------------------------------------------------------

    async def _pause(self, reason: str) -> None:
        """Drop what the sidecar hands landing from now on; the child lands what it has and
        seals (on this thread first: each record is on one side of the switch)."""
        self._trades.drop()
        for outlet in self._unfetched:
            outlet.drop()
        paused = await asyncio.to_thread(self.landing.pause, reason)
        self._landed = await asyncio.to_thread(self._landed_ids)
        # Set with no await before check() shows it, so /ready and /metrics never disagree.
        self.status.paused = paused
        self._resume_after = time.monotonic() + self._retry_s
        log.error("landing paused: %s; %s", self.status.paused, self.status.space_text())

    def _may_resume(self) -> bool:
        space = self.status.space
        return (
            space is not None
            and space.free_bytes >= self.status.min_free.resume_bytes(space)
            and time.monotonic() >= self._resume_after
        )

    async def _resume(self, child_paused: bool) -> None:
        """Resume the child, land the trades it missed, then the sidecar's again."""
        started = time.monotonic()
        if child_paused:
            await asyncio.to_thread(self.landing.resume)
        for outlet in self._unfetched:
            outlet.land()
        self._landed = await asyncio.to_thread(self._landed_ids)
        upto = self._newest_delivered()  # the newest trades dropped: what comes after is held
        held = self._trades.hold()
        histories: dict[str, TradeHistory | None] = {}
        try:
            fetched = await self._catch_up(histories, upto, held)
            await self._still_landing()
        except (CatchUpAbandoned, MissingTradesError, *_failures(histories)) as error:
            await self._abandon(error)
            return
        finally:
            for history in histories.values():
                if history is not None:
                    await history.aclose()
        self._trades.land()  # the held trades, then the live ones
        self.status.paused = None
        self._landed = {}
        self._retry_s = RETRY_S[0]
        took = time.monotonic() - started
        log.warning("landing resumed: %d missed trades fetched again and landed in %.2f s",
                    fetched, took)  # fmt: skip

    async def _catch_up(
        self, histories: dict[str, TradeHistory | None], upto: Mapping[str, Trade], held: Sized
    ) -> int:
        """Land each instrument's trades after its last landed one up to ``upto``; how many.
        ``histories`` collects each venue's REST history as it is opened (the caller closes
        them). An instrument whose venue serves no history is left with a :class:`LandingGap`."""
        fetched = 0
        for instrument, newest in upto.items():
            last = newest.trade_id
            landed = self._landed.get(instrument)
            if landed is None:  # the feed announces every start before delivering from it
                log.error("no landed trade nor run start of %s: its trades are lost", instrument)
                continue
            venue, symbol = venue_of(instrument)
            if venue.name not in histories:
                histories[venue.name] = venue.trade_history(
                    self._rest_base_urls.get(venue.name, ""), retry=self._rest_retry
                )
            history = histories[venue.name]
            if history is None:
                if last > landed:
                    reason = f"{venue.name} serves no trade history"
                    await self._give_up(instrument, landed, newest, reason)
                continue
            landed_ns: int | None = None  # the time of trade ``landed`` once it is at hand
            async for trades in trade_chunks(history, symbol, landed + 1, last, CATCH_UP_CHUNK):
                if trades[0].trade_id != landed + 1:
                    reason = "the exchange does not serve them"
                    await self._give_up(instrument, landed, trades[0], reason, landed_ns, True)
                self._trades.land_now(trades)
                self._landed[instrument] = landed = trades[-1].trade_id
                landed_ns = trades[-1].trade_ns
                fetched += len(trades)
                self._show()
                if len(held) > MAX_HELD_TRADES:
                    raise CatchUpAbandoned(f"{len(held)} new trades arrived while catching up")
                await self._still_landing()
        return fetched

    async def _give_up(
        self,
        instrument: str,
        landed: int,
        upto: Trade,
        reason: str,
        after_ns: int | None = None,
        before: bool = False,
    ) -> None:
        """Record the trades after ``landed`` (traded at ``after_ns``; None: read from disk) up to
        ``upto`` (before it, with ``before``) as a gap that cannot be filled: logged, shown in
        the status and counted, and not asked for again by a later resume."""
        if after_ns is None:
            after_ns = await asyncio.to_thread(self._landed_trade_ns, instrument, landed)
        last_id = upto.trade_id - 1 if before else upto.trade_id
        until_ns = None if before else upto.trade_ns
        gap = LandingGap(instrument, landed + 1, last_id, after_ns, until_ns, reason)
        log.error("landing resumes with a hole: %s", gap.text())
        self.status.unfilled_gaps.append(gap)
        self.metrics.landing_unfilled_gaps.labels(instrument).inc()
        self.metrics.landing_unfilled_trades.labels(instrument).inc(gap.trades)
        self._given_up[instrument] = gap
        self._landed[instrument] = last_id

    def _landed_trade_ns(self, instrument: str, trade_id: int) -> int | None:
        """The time of trade ``trade_id`` when it is the instrument's newest landed one (or of
        the newest gap given up on that ends there); None when unknown."""
        gap = self._given_up.get(instrument)
        if gap is not None and gap.last_id == trade_id:
            return gap.until_ns
        segments = list_segments(self.root, TRADES_KIND, instrument=instrument, include_open=True)
        try:  # the child may seal (rename) a segment meanwhile: then the time is not known
            for segment in reversed(segments):
                if (record := last_complete_record(segment.path)) is not None:
                    trade = _decode_landed_trade(record)
                    return trade.trade_ns if trade.trade_id == trade_id else None
        except (OSError, msgspec.DecodeError) as error:
            log.warning("time of %s trade %s not read: %s", instrument, trade_id, error)
        return None

    async def _still_landing(self) -> None:
        """Raise :class:`CatchUpAbandoned` when the child has paused again (its disk is full)."""
        if (paused := await asyncio.to_thread(self.landing.child_paused)) is not None:
            raise CatchUpAbandoned(paused)

    async def _abandon(self, error: BaseException) -> None:
        """Back to paused after a failed resume: drop the held trades (fetched again next time,
        after what the catch-up landed), and retry later."""
        self._trades.drop()
        child_paused = await asyncio.to_thread(self.landing.child_paused)
        if child_paused is not None:  # the disk filled again: the child lands no more
            for outlet in self._unfetched:
                outlet.drop()
            await asyncio.to_thread(self.landing.pause, child_paused)
        else:  # the fetched trades it was sent are on disk before it is read
            await asyncio.to_thread(self.landing.flush)
        self._landed = await asyncio.to_thread(self._landed_ids)
        self.status.paused = f"resuming failed ({error}); retrying in {self._retry_s:g} s"
        self._resume_after = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, RETRY_S[1])
        log.error("landing %s", self.status.paused)

    # -- what was handed to landing, and what landed --------------------------------------------

    def _newest_delivered(self) -> dict[str, Trade]:
        """The newest trade the sidecar handed to landing, per symbol."""
        newest = {}
        for symbol, messages in list(self.metrics.messages.by_symbol.items()):
            trade = messages.newest_trade
            if trade is not None:
                newest[symbol] = trade
        return newest

    def _delivered(self) -> dict[str, int]:
        """The newest trade id the sidecar handed to landing, per symbol."""
        return {symbol: trade.trade_id for symbol, trade in self._newest_delivered().items()}

    def _landed_ids(self) -> dict[str, int]:
        """The last landed trade id per symbol (the one before its run start when none landed):
        read from disk, with the starts not yet recorded there, and past the gaps given up on."""
        landed = resume_points(self.root)
        for symbol, start in self.run_starts.items():
            landed[symbol] = max(landed.get(symbol, start - 1), start - 1)
        for symbol, gap in list(self._given_up.items()):
            landed[symbol] = max(landed.get(symbol, gap.last_id), gap.last_id)
        return landed

    def _unlanded_trades(self) -> int:
        if self.status.paused is None:
            return 0
        landed = self._landed
        return sum(max(0, last - landed.get(s, last)) for s, last in self._delivered().items())

    def _show(self) -> None:
        status, metrics = self.status, self.metrics
        status.unlanded_trades = self._unlanded_trades()
        if status.space is not None:
            metrics.landing_free_bytes.set(status.space.free_bytes)
            metrics.landing_free_ratio.set(status.space.free_fraction)
            metrics.landing_min_free_bytes.set(status.min_free.bytes_of(status.space))
        metrics.landing_paused.set(float(status.paused is not None))
        metrics.landing_unlanded_trades.set(status.unlanded_trades)


class _LandedTrade(msgspec.Struct):
    trade_id: int
    trade_ns: int


_decode_landed_trade = msgspec.json.Decoder(_LandedTrade).decode


def _failures(histories: Mapping[str, TradeHistory | None]) -> tuple[type[BaseException], ...]:
    """What a failed fetch of the histories opened so far raises."""
    return tuple(f for h in histories.values() if h is not None for f in h.failures)
