"""The sidecar: live ticks → landing + live features → online store → ONNX predictions.

One asyncio loop runs four tasks: the market feed (every record landed, trades and tickers fed
to the live features, completed rows handed to the online writer's background thread), the
predictor (every ``predict_every_s`` per symbol: fallback decision → models → risk → prediction),
the model poller (alias moves → hot swap) and the landing maintainer (fsync and rotation in a
worker thread); a fifth supervises the model watcher, the child process that mirrors the MLflow
aliases to local files, so this process never imports MLflow, and, when the Dagster side reads
landing from elsewhere (an ``s3://`` landing location), a sixth supervises the landing shipper,
the child process that uploads each sealed segment there. Blocking work never runs on the
loop: Feast writes have their own thread, and silver microbatches (fallback level 4) are read and
recomputed by a worker process (:mod:`streaming.silver_pull`), waited for in a thread, and used
once they arrive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from streaming.api import PredictionApi, PredictionHub, Readiness
from streaming.book.capture import DEPTH_CHANNELS, BookCapture
from streaming.config import SidecarConfig
from streaming.fallback import (
    FallbackController,
    FallbackDecision,
    FallbackLevel,
    LiveFeatureTracker,
    LiveFeatureTrackers,
    cross_trackers,
)
from streaming.inference import ModelSlots
from streaming.ingest import MarketFeed
from streaming.ingest.feeds import VenueFeeds
from streaming.landing import (
    BOOK_TICKERS_KIND,
    PREDICTIONS_KIND,
    TRADES_KIND,
    Landing,
    LandingProcess,
    LandingWriter,
    maintain,
    resume_points,
)
from streaming.landing.guard import LandingGuard
from streaming.landing.shipper import needs_shipping
from streaming.landing.shipping import ShipperProcess
from streaming.loop_watch import LoopWatch
from streaming.metrics import SidecarMetrics
from streaming.model_files import mirror_dir
from streaming.online import (
    BoundedOnlineReader,
    OnlineFeatureReader,
    OnlineFeatureWriter,
    open_feature_store,
)
from streaming.paper import build_paper_desk
from streaming.predictions import Prediction, unscored_prediction
from streaming.prefetched_silver import open_silver
from streaming.records import BookTicker, DepthUpdate, Trade
from streaming.routes import Route, route
from streaming.trading import Trader
from streaming.watcher_process import WatcherProcess
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG, SERVICES, service_features
from trading_assets.lib.features import CROSS, DEPTH
from trading_assets.lib.features.incremental import FeatureRow
from trading_assets.lib.instruments import instrument_id
from trading_assets.lib.risk import RiskEngine, RiskLimits

log = logging.getLogger(__name__)
NS = 1_000_000_000
_NO_ROUTES: dict[str, Route] = {}  # a venue's routes before its first message


class Sidecar:
    """The running sidecar; ``await run()`` until ``stop()`` (SIGTERM) or cancellation.

    ``landing_uri`` is where the Dagster side reads landed segments: when it is not the landing
    folder itself, a shipper uploads every sealed segment there (None: nothing is shipped).
    """

    def __init__(
        self,
        config: SidecarConfig,
        store: Any | None = None,
        predict_on_bar_close: bool = False,
        landing_uri: str | None = None,
    ) -> None:
        self.config = config
        # Event-driven predictions as well as the periodic ones: a tick that closes a bar is
        # followed at once by a prediction for its symbol (bench/bench_sidecar.py times this).
        self.predict_on_bar_close = predict_on_bar_close
        served = SERVICES[config.feature_service]
        groups = tuple(group for group in served if group != CROSS)  # each instrument's own
        # The service's features (v2: no level features); the trackers still compute and push
        # every feature of its groups, levels included, for display.
        self.feature_order = service_features(config.feature_service)
        self.metrics = SidecarMetrics()
        self.loop_watch = LoopWatch(self.metrics.registry)
        self.hub = PredictionHub(self.metrics)
        budgets = config.fallback_budgets
        # The clock closes a symbol's quiet seconds only behind its newest message, and not
        # while the feed holds its trades behind a missing id (see LiveFeatureTracker).
        self.trackers = {
            i: LiveFeatureTracker(i, FEATURE_CONFIG, groups, gap_open=self._gap_check(i))
            for i in config.instruments
        }
        # The cross group of each own instrument of TRADING_CROSS_PAIRS, fed by both instruments.
        self.cross = cross_trackers(self.trackers, config.cross_references, FEATURE_CONFIG)
        live = LiveFeatureTrackers(list(self.trackers.values()))
        self.store = store if store is not None else open_feature_store(config)
        root = config.landing_root
        # Market data lands through a child process, so the message loop only encodes each
        # record (see streaming.landing.process); predictions, a few a second, in process.
        self.landing = LandingProcess(root)
        # The L2 books it keeps and lands, and their live depth features (none when
        # TRADING_BOOK_SNAPSHOT_S is 0, or no instrument's venue has a recorded depth stream).
        self.book: BookCapture | None = None
        if config.book_snapshot_every_s > 0:
            rest_urls = {name: e.rest_base_url for name, e in config.endpoints().items()}
            self.book = BookCapture(
                config.instruments, self.landing, rest_urls, self.metrics.registry,
                config.book_snapshot_every_s,
            )  # fmt: skip
        depth = (DEPTH,) if self.book is not None and self.book.recorders else ()
        pushed = (*groups, *depth, *((CROSS,) if self.cross else ()))
        self.online_writer = OnlineFeatureWriter(self.store, views=pushed)
        # On its own thread, waited for no longer than the controller would accept a read.
        self.online_reader = BoundedOnlineReader(
            OnlineFeatureReader(self.store, config.feature_service),
            budgets.online_max_latency_s,
            self.metrics.registry,
        )
        self.silver = open_silver(config, self.feature_order)
        self.controller = FallbackController(
            self.feature_order,
            online=self.online_reader,
            live=live,
            silver=self.silver,
            budgets=budgets,
            last_message=live.last_message_ns,
        )
        self.risk = RiskEngine(
            RiskLimits(fee_bp=config.fee_bp), on_transition=self.metrics.count_risk_transition
        )
        self.metrics.paper.show(self.risk)
        self.trader = Trader(config, self.risk, self.metrics.messages)
        # Every role's paper account on the live market, trading each of its predictions.
        self.paper, paper_writers = build_paper_desk(
            config, self.book, self.trader, self.metrics.registry
        )
        self.trader.paper = self.paper
        self.slots: ModelSlots | None = None
        self.model_watcher: WatcherProcess | None = None
        if config.tracking_uri:
            mirror = mirror_dir(config.data_root, config.model_name)
            self.slots = ModelSlots(mirror, metrics=self.metrics, feature_order=self.feature_order)
            self.model_watcher = WatcherProcess(
                config.tracking_uri, config.model_name, mirror, config.model_poll_s
            )
        self._predictions_writer = LandingWriter(root, PREDICTIONS_KIND, inline_poll=False)
        self.writers: dict[str, Landing] = {
            "market": self.landing,
            PREDICTIONS_KIND: self._predictions_writer,
            **paper_writers,
        }
        self.shipper: ShipperProcess | None = None
        if landing_uri is not None and needs_shipping(root, landing_uri):
            self.shipper = ShipperProcess(root, landing_uri, on_state=self.metrics.shipping.show)
        # What on_record, called once per market message, reaches for without lookups.
        self._trades_writer = self.landing.outlet(TRADES_KIND)
        self._book_tickers_writer = self.landing.outlet(BOOK_TICKERS_KIND)
        # Per venue, per symbol as the venue spells it: the instrument's message counts and
        # where its book tickers and trades go.
        self._routes: dict[str, dict[str, Route]] = {}
        self.decisions: dict[str, FallbackDecision] = {}
        self.feeds: VenueFeeds | None = None
        self.api = PredictionApi(
            self.hub, self.metrics, self.readiness, config.api_host, config.api_port,
            risk=self.risk.snapshot, symbols=config.instruments, paper=self.paper.snapshot,
        )  # fmt: skip
        self._stop = asyncio.Event()

    def _gap_check(self, instrument: str) -> Callable[[], bool]:
        return lambda: self.feeds is not None and self.feeds.has_gap(instrument)

    def no_champion_reason(self) -> str:
        """Why no @champion serves (safe mode), as the model mirror tells it."""
        return "no @champion model" if self.slots is None else self.slots.no_champion_reason()

    def readiness(self) -> Readiness:
        """Ready when a @champion is loaded, some symbol's data is not in safe mode, and market
        data lands (not paused for want of disk space)."""
        reasons = []
        if self.slots is None or self.slots.get("champion") is None:
            reasons.append(self.no_champion_reason())
        if not any(d.level < FallbackLevel.SAFE for d in self.decisions.values()):
            reasons.append("every symbol is in safe mode (stale data)")
        reasons.extend(self.landing.status.reasons())  # disk low or full: landing paused
        return Readiness(ready=not reasons, reasons=tuple(reasons))

    def stop(self) -> None:
        """Ask ``run`` to shut down gracefully (flush everything, close connections)."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until stopped; on the way out every landed file is sealed and pushed rows land."""
        # Each symbol's last landed trade, or where its previous run began if none of it landed.
        resume = resume_points(self.config.landing_root)
        log.info("resuming trades after %s", resume or "nothing (fresh start)")
        rest_urls = {name: e.rest_base_url for name, e in self.config.endpoints().items()}
        guard = LandingGuard(self.landing, rest_urls, self.metrics, self.config.landing_min_free)
        self.feeds = VenueFeeds(
            self.config.instruments,
            self.config.endpoints(),
            self.config.data_root,
            resume_from=resume,
            watchdog_s=self.config.watchdog_s,
            on_run_start=guard.record_run_starts,  # recorded before any of their trades lands
            extra_channels=DEPTH_CHANNELS if self.book and self.book.recorders else None,
        )
        self.metrics.market_feed.show(self.feeds.feeds)
        await guard.check()  # on a disk already low, landing is paused before anything lands
        await self.api.start()
        log.info("sidecar API on %s", self.api.url)
        for instrument in self.config.instruments:
            self._prefetch_silver(instrument, time.time_ns())
        tasks = [
            *(
                asyncio.create_task(self._consume(feed), name=f"feed-{name.lower()}")
                for name, feed in self.feeds.feeds.items()
            ),
            asyncio.create_task(self._predict_forever(), name="predict"),
            asyncio.create_task(maintain(self.writers.values()), name="landing"),
            asyncio.create_task(guard.run(), name="landing-guard"),  # pauses on a filling disk
            asyncio.create_task(self.loop_watch.run(), name="loop-watch"),
        ]
        if self.book is not None and self.book.recorders:  # its REST snapshots
            tasks.append(asyncio.create_task(self.book.run(), name="book-snapshots"))
        if self.slots is not None and self.model_watcher is not None:
            tasks.append(
                asyncio.create_task(self.slots.poll(self.config.model_poll_s), name="models")
            )
            # Cancelled with the others on shutdown, which terminates the watcher process.
            tasks.append(asyncio.create_task(self.model_watcher.supervise(), name="watcher"))
        if self.shipper is not None:  # cancelled with the others, which terminates it
            tasks.append(asyncio.create_task(self.shipper.supervise(), name="shipper"))
        stop = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self._shutdown([stop, *tasks])

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        # The feed's consumer goes first so no record arrives after its writer sealed.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.feeds is not None:
            await self.feeds.aclose()
        failures: list[Exception] = []
        for name, writer in self.writers.items():
            try:
                writer.close()
            except Exception as error:  # the rest must still be sealed and closed
                log.error("%s landing did not close cleanly: %s", name, error)
                failures.append(error)
        if self.shipper is not None:  # what was sealed just now goes too
            await self.shipper.drain()
        await asyncio.to_thread(self.online_writer.close)
        self.online_reader.close()
        if self.silver is not None:
            await asyncio.to_thread(self.silver.close)
        if self.slots is not None:
            self.slots.close()
        await self.api.stop()
        if failures:
            raise failures[0]
        log.info("sidecar stopped: landing sealed, online rows written")

    async def _consume(self, feed: MarketFeed) -> None:
        async with feed:
            async for record in feed:
                self.on_record(record)

    def on_record(self, record: object) -> list[FeatureRow]:
        """Land one record and feed it to the live features; the feature rows it completed go to
        the online store and are returned (and, with ``predict_on_bar_close``, are followed at
        once by the instrument's prediction)."""
        if type(record) is BookTicker:  # the most frequent first
            self.paper.before(record.receive_ns)  # orders due before it fill on the book then
            self._book_tickers_writer.write(record)
            routes = self._routes.get(record.venue, _NO_ROUTES)
            found = routes.get(record.symbol) or self._route(record.venue, record.symbol)
            messages, on_book_ticker, _ = found
            messages.book_tickers += 1
            messages.newest_book_ticker = record
            rows = on_book_ticker(record)
        elif type(record) is Trade:
            self.paper.before(record.receive_ns)
            self._trades_writer.write(record)
            routes = self._routes.get(record.venue, _NO_ROUTES)
            found = routes.get(record.symbol) or self._route(record.venue, record.symbol)
            messages, _, on_trade = found
            messages.trades += 1
            messages.newest_trade = record
            rows = on_trade(record)
        elif type(record) is DepthUpdate and self.book is not None:
            self.paper.before(record.receive_ns)
            rows = self.book.on_update(record)  # the seconds it closed (no prediction follows)
            for row in rows:
                self.online_writer.submit(row)
            return rows
        else:
            return []
        if rows:
            for row in rows:
                self.online_writer.submit(row)
            if self.predict_on_bar_close:
                self.predict(record.instrument, time.time_ns())
        return rows

    async def _predict_forever(self) -> None:
        period = self.config.predict_every_s
        while True:
            # On the period's grid, a little after each boundary so its bars have closed.
            now = time.time()
            await asyncio.sleep(period - now % period + 0.05)
            if self.book is not None:  # the books' seconds closed by the clock
                for row in [*self.book.take_pending(), *self.book.close_until(time.time_ns())]:
                    self.online_writer.submit(row)
            for instrument in self.config.instruments:
                self.predict(instrument, time.time_ns())

    def predict(self, symbol: str, now_ns: int) -> list[Prediction]:
        """Every serving model's prediction for ``symbol`` now; the driving one is risk-checked."""
        started = time.perf_counter()
        self.trader.settle(symbol, now_ns)
        tracker = self.trackers.get(symbol)
        # Seconds closed by the clock (no trade has arrived after them yet) reach the online
        # store too, before the vector is read back. Their event times say nothing about the
        # feed being alive: the controller ages vectors by the symbol's newest message.
        for row in tracker.advance(now_ns) if tracker else []:
            self.online_writer.submit(row)
        decision = self.controller.decide(symbol, now_ns)
        previous = self.decisions.get(symbol)
        if decision.level >= FallbackLevel.IMPUTED and (
            previous is None or previous.level < FallbackLevel.IMPUTED
        ):
            # Live data just went: fetch silver while the imputed vector lasts (level 3), so
            # level 4 finds a microbatch instead of none until the controller's next pull.
            self._prefetch_silver(symbol, now_ns)
        self.decisions[symbol] = decision
        self.metrics.feature_age.labels(symbol).set(decision.age_s)
        # Every model's latency is this shared read plus its own scoring, not the others'.
        read_s = time.perf_counter() - started
        models = dict(self.slots.snapshot()) if self.slots is not None else {}
        driver = self.trader.driver(symbol, now_ns, models)
        predictions = [
            self.trader.prediction(symbol, now_ns, decision, model, role == driver, read_s)
            for role, model in models.items()
        ]
        serving = [p.role == driver for p in predictions]
        if driver not in models:
            reason = self.no_champion_reason() if decision.can_trade else decision.explained
            latency_ms = (time.perf_counter() - started) * 1000
            predictions.append(
                unscored_prediction(symbol, now_ns, int(decision.level), reason, latency_ms)
            )
            serving.append(True)
        for prediction, serves in zip(predictions, serving, strict=True):
            if serves:  # a champion's, a canary's or no model's: the hub serves them by default
                self.hub.publish(prediction)
            else:  # scored for this tick without driving it: streamed and logged, not served
                self.hub.publish(prediction, serves=False)
            self._predictions_writer.write(prediction)
        return predictions

    def _prefetch_silver(self, symbol: str, now_ns: int) -> None:
        if self.silver is not None:
            lookback_ns = round(self.config.fallback_budgets.silver_lookback_s * NS)
            self.silver.prefetch(symbol, now_ns - lookback_ns, now_ns)

    def _route(self, venue: str, symbol: str) -> Route:
        instrument = instrument_id(venue, symbol)
        found = route(instrument, self.metrics.messages, self.trackers, self.cross)
        self._routes.setdefault(venue, {})[symbol] = found
        return found
