"""The exchange simulator: every venue's protocol over one synthetic market, on one local port.

Binance spot's public HTTP and WebSocket protocol at the root (:mod:`streaming.simulator.binance`),
Binance USD-M futures' streams under ``/fapi`` (:mod:`streaming.simulator.binance_futures`), and
Coinbase Advanced Trade's WebSocket at ``/coinbase`` (:mod:`streaming.simulator.coinbase`) and
Kraken spot's WebSocket v2 at ``/kraken/v2`` (:mod:`streaming.simulator.kraken`).

Sources: the synthetic market (REST and bulk history served instantly, a wall-clock live stream
continuing it) or, with ``replay``, recorded sessions replayed byte for byte at N× speed. The
other venues show the synthetic tape with the planted lead-lag, each its own delay behind
Binance spot (``venue_delays_s``, :mod:`streaming.simulator.lead_lag`).

    async with SimulatorServer(symbols=["BTCUSDT"]) as sim: ...   # tests, port 0 = any free port
    with run_simulator_in_thread(...) as sim: ...                 # synchronous callers
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiohttp import web

from streaming.simulator.binance.bulk_routes import BulkFiles
from streaming.simulator.binance.faults import FaultInjector, FaultPlan
from streaming.simulator.binance.replay import RecordingReplay
from streaming.simulator.binance.rest import BinanceApiError, RestApi
from streaming.simulator.binance.streams import StreamEndpoint, StreamHub
from streaming.simulator.binance_futures import FuturesStreams
from streaming.simulator.coinbase import PATH as COINBASE_PATH
from streaming.simulator.coinbase import CoinbaseEndpoint
from streaming.simulator.history import MarketHistory
from streaming.simulator.kraken import KrakenStreams
from streaming.simulator.lead_lag import venue_delays_us
from streaming.simulator.live import SyntheticLiveFeed
from streaming.simulator.synthetic import DEFAULT_EDGE, DayTape, SyntheticMarket

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_LISTING_DATE = dt.date(2017, 8, 17)
_FAULTED_PREFIXES = ("/api/", "/data/")


class _Publisher(Protocol):
    def routes(self) -> list[web.RouteDef]: ...

    async def start(self) -> None: ...


def _started_on_first_request(
    publisher: _Publisher, routes: Sequence[web.RouteDef]
) -> list[web.RouteDef]:
    """``routes`` whose handlers first make sure ``publisher`` runs (started once, on the first
    request to any of them)."""
    lock = asyncio.Lock()

    def wrapped(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            async with lock:
                await publisher.start()
            return await handler(request)

        return handle

    return [web.route(r.method, r.path, wrapped(r.handler), **r.kwargs) for r in routes]


def _log_failure(task: asyncio.Task[None]) -> None:
    """A feed that dies stops the simulator's streams: say so at once, not at shutdown."""
    if not task.cancelled() and task.exception() is not None:
        log.error("simulator feed failed", exc_info=task.exception())


class SimulatorServer:
    """Async context manager running the simulator; exposes ``http_url`` and ``ws_url``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
        seed: int = 7,
        trades_per_day: int = 200_000,
        listing_date: dt.date = DEFAULT_LISTING_DATE,
        replay: Sequence[str | Path] | None = None,
        speed: float = 1.0,
        replay_after_clients: int = 1,
        close_when_replay_done: bool = False,
        live: bool = True,
        heartbeat_seconds: float | None = 20.0,
        clock_ns: Callable[[], int] = time.time_ns,
        market: SyntheticMarket | None = None,
        edge: float = DEFAULT_EDGE,
        venue_delays_s: Mapping[str, float] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.venue_delays_us = venue_delays_us(venue_delays_s)
        """Each venue's delay behind the tape in µs (None: the defaults; a mapping: those
        delays, venues not named undelayed; see :mod:`streaming.simulator.lead_lag`)."""
        delays = self.venue_delays_us
        self.market = market or SyntheticMarket(seed=seed, trades_per_day=trades_per_day, edge=edge)
        self.clock_ns = clock_ns
        self.faults = FaultInjector()
        self.hub = StreamHub()
        self.history = MarketHistory(self.market, listing_date)
        self.replay = RecordingReplay(replay, speed) if replay else None
        self._symbols = [s.upper() for s in symbols]
        self._replay_after_clients = replay_after_clients
        self._close_when_replay_done = close_when_replay_done
        self._live = live and self.replay is None
        self._streams = StreamEndpoint(self.hub, self.faults, heartbeat_seconds)
        self.coinbase = CoinbaseEndpoint(
            self._symbols, self._load_tape, clock_ns, self.history.listing_date, self.faults,
            heartbeat_seconds, delays["coinbase"],
        )  # fmt: skip
        self.futures = FuturesStreams(
            self.market, clock_ns, self._symbols, history=self.history, faults=self.faults,
            heartbeat_seconds=heartbeat_seconds, delay_us=delays["binance_futures"],
        )  # fmt: skip
        self.kraken = KrakenStreams(
            self.market, clock_ns, self._symbols, history=self.history, faults=self.faults,
            delay_us=delays["kraken"],
        )  # fmt: skip
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []

    @property
    def symbols(self) -> list[str]:
        """Symbols served (replayed ones included once started)."""
        return list(self._symbols)

    @property
    def http_url(self) -> str:
        """Base URL of the REST API and bulk files."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base URL of the WebSocket streams."""
        return f"ws://{self.host}:{self.port}"

    @property
    def coinbase_ws_url(self) -> str:
        """URL of the Coinbase Advanced Trade WebSocket (the synthetic market)."""
        return self.ws_url + COINBASE_PATH

    @property
    def futures_ws_url(self) -> str:
        """Base URL of the Binance USD-M futures streams (the synthetic market as perpetuals)."""
        return self.futures.ws_url(self.ws_url)

    @property
    def kraken_ws_url(self) -> str:
        """URL of the Kraken spot WebSocket v2 (the synthetic market)."""
        return self.kraken.ws_url(self.ws_url)

    def set_faults(self, **changes: Any) -> FaultPlan:
        """Merge fault settings (see :class:`FaultPlan`) into the current plan."""
        return self.faults.update(**changes)

    def clear_faults(self) -> None:
        """Back to no faults, counters reset."""
        self.faults.clear()

    async def __aenter__(self) -> SimulatorServer:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # a half-started server (e.g. port taken) must not leak its runner
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the port and start the replay or live feed."""
        snapshots: dict[str, bytes] = {}
        if self.replay is not None:
            await asyncio.to_thread(self.replay.scan)
            snapshots = self.replay.depth_snapshots
            self._symbols += sorted(self.replay.symbols - set(self._symbols))
        live_feed = None
        if self.replay is None and self._live:
            live_feed = SyntheticLiveFeed(self._symbols, self._load_tape, self.clock_ns)
        live_depth = live_feed.depth_snapshot if live_feed is not None else None
        rest = RestApi(self.history, self._symbols, self.clock_ns, snapshots, live_depth)
        bulk = BulkFiles(self.history, self._symbols, self.clock_ns)
        app = web.Application(middlewares=[self._http_faults, self._binance_errors])
        app.add_routes(rest.routes())
        app.add_routes(bulk.routes())
        app.add_routes(self.coinbase.routes())
        # Their publishers start with their first client: a test of one venue does not pay for
        # generating the day's tapes three times over.
        for publisher in (self.futures, self.kraken):
            routes = publisher.routes()
            app.add_routes(_started_on_first_request(publisher, routes) if self._live else routes)
        app.add_routes(
            [
                web.get("/stream", self._streams.combined),
                web.get("/ws/{streams:.+}", self._streams.raw),
                web.get("/_sim/faults", self._get_faults),
                web.post("/_sim/faults", self._post_faults),
                web.delete("/_sim/faults", self._delete_faults),
                web.get("/_sim/status", self._status),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]  # the one picked when port 0 was asked for
        if self.replay is not None:
            replay = self.replay.run(
                self.hub, self._replay_after_clients, self._close_when_replay_done
            )
            self._spawn(replay)
        elif live_feed is not None:
            self._spawn(live_feed.run(self.hub))
        log.info("exchange simulator: REST %s  WS %s", self.http_url, self.ws_url)

    def _spawn(self, feed: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(feed)
        task.add_done_callback(_log_failure)
        self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the feeds, close every connection and release the port."""
        for task in self._tasks:
            task.cancel()
        # A feed's own failure was logged when it happened (_log_failure).
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.futures.stop()
        await self.kraken.stop()
        await self._streams.close_all()
        await self.coinbase.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _load_tape(self, symbol: str, day: dt.date) -> DayTape:
        return await asyncio.to_thread(self.history.locked, self.market.tape, symbol, day)

    @web.middleware
    async def _http_faults(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith(_FAULTED_PREFIXES):
            fault = self.faults.take_http_fault()
            if fault is not None:
                status, headers, body = fault
                return web.Response(
                    status=status, body=body, headers=headers, content_type="application/json"
                )
        return await handler(request)

    @web.middleware
    async def _binance_errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BinanceApiError as error:
            return error.response()

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            self.faults.update(**changes)
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self.faults.as_dict())

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response(self.faults.as_dict())

    async def _status(self, request: web.Request) -> web.Response:
        status = {
            "symbols": self._symbols,
            "source": "replay" if self.replay else "synthetic",
            "ws_connections_open": self.hub.subscriber_count,
            "ws_connections_total": self.hub.connections_total,
            "replay_frames_published": self.replay.frames_published if self.replay else None,
            "replay_done": self.replay.done.is_set() if self.replay else None,
            "venue_delays_s": {v: us / 1e6 for v, us in self.venue_delays_us.items()},
        }
        return web.Response(text=json.dumps(status), content_type="application/json")


class SimulatorThread:
    """A simulator running on its own event loop thread, for synchronous callers."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop = asyncio.Event()  # binds to self._loop when first awaited there
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="exchange-simulator", daemon=True)

    @property
    def http_url(self) -> str:
        """Base URL of the REST API and bulk files."""
        return self.server.http_url

    @property
    def ws_url(self) -> str:
        """Base URL of the WebSocket streams."""
        return self.server.ws_url

    @property
    def coinbase_ws_url(self) -> str:
        """URL of the Coinbase Advanced Trade WebSocket."""
        return self.server.coinbase_ws_url

    @property
    def futures_ws_url(self) -> str:
        """Base URL of the Binance USD-M futures streams."""
        return self.server.futures_ws_url

    @property
    def kraken_ws_url(self) -> str:
        """URL of the Kraken spot WebSocket v2."""
        return self.server.kraken_ws_url

    def set_faults(self, **changes: Any) -> FaultPlan:
        """Merge fault settings into the plan, on the simulator's own loop."""
        return self._on_loop(partial(self.server.set_faults, **changes))

    def clear_faults(self) -> None:
        """Back to no faults, on the simulator's own loop."""
        self._on_loop(self.server.clear_faults)

    def _on_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as error:  # surfaced to the starting thread
            self._error = error
        finally:
            self._ready.set()
            try:  # let to_thread workers and async generators finish before the loop goes
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                self._loop.run_until_complete(self._loop.shutdown_default_executor())
            finally:
                self._loop.close()

    async def _serve(self) -> None:
        async with self.server:
            self._ready.set()
            await self._stop.wait()

    def start(self, timeout: float = 30.0) -> None:
        """Start the thread and wait until the simulator listens."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("exchange simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("exchange simulator failed to start") from self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the simulator down and wait for its thread (also after a failed start)."""
        if self._thread.ident is None:  # never started: only the loop to release
            self._loop.close()
            return
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("exchange simulator thread still running %ss after stop", timeout)


@contextlib.contextmanager
def run_simulator_in_thread(**server_options: Any) -> Iterator[SimulatorThread]:
    """``with run_simulator_in_thread(symbols=[...]) as sim: httpx.get(sim.http_url + ...)``."""
    runner = SimulatorThread(SimulatorServer(**server_options))
    try:
        runner.start()
        yield runner
    finally:
        runner.stop()
