"""Binance USD-M futures' market streams over the synthetic market, as routes to mount.

    futures = FuturesStreams(market, clock_ns, ["BTCUSDT"])
    app.add_routes(futures.routes())      # /fapi/stream?streams=..., /fapi/ws/<stream>
    await futures.start()                 # after the app listens; ``await futures.stop()``
    MarketFeed(ws_url + "/fapi", ..., venue=venue("binance_futures"))

The connections are the spot simulator's (its ``StreamEndpoint``: combined and raw streams,
live SUBSCRIBE / UNSUBSCRIBE, the fault plan's drops, stalls, malformed frames, ...) on a hub of
their own, since the perpetual's stream names are the spot ones.
Given the simulator's :class:`FaultInjector`, one fault plan governs both; the futures-only
fault, a broken ``pu`` chain, is :meth:`FuturesStreams.break_depth_chain` (also
``POST /_sim/fapi/break_depth_chain?times=N``), counted in the plan's ``applied`` counters as
``depth_chain_broken``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence

from aiohttp import web

from streaming.simulator.binance.faults import FaultInjector
from streaming.simulator.binance.streams import StreamEndpoint, StreamHub
from streaming.simulator.binance_futures.live import FuturesLiveFeed
from streaming.simulator.history import MarketHistory
from streaming.simulator.synthetic import EPOCH_DAY, DayTape, SyntheticMarket

log = logging.getLogger(__name__)
DEFAULT_PREFIX = "/fapi"


class FuturesStreams:
    """The perpetuals of ``symbols`` on the synthetic ``market``, paced by ``clock_ns``.

    ``history``: the simulator's, whose lock guards the market's caches (the REST handlers
    read the same market from worker threads); ``faults``: the simulator's fault plan;
    ``delay_us``: how far behind the tape the perpetual trades
    (:mod:`~streaming.simulator.lead_lag`).
    """

    def __init__(
        self,
        market: SyntheticMarket,
        clock_ns: Callable[[], int],
        symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
        *,
        history: MarketHistory | None = None,
        faults: FaultInjector | None = None,
        heartbeat_seconds: float | None = 20.0,
        prefix: str = DEFAULT_PREFIX,
        delay_us: int = 0,
    ) -> None:
        self.market = market
        self.history = history or MarketHistory(market, EPOCH_DAY)
        self.faults = faults or FaultInjector()
        self.hub = StreamHub()
        self.prefix = prefix.rstrip("/")
        self.feed = FuturesLiveFeed(
            symbols, self._load_tape, clock_ns, self.faults.applied, delay_us
        )
        self._endpoint = StreamEndpoint(self.hub, self.faults, heartbeat_seconds)
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[web.RouteDef]:
        """The stream endpoints, ``<prefix>/stream`` and ``<prefix>/ws/<streams>``, and the
        depth-chain fault's control."""
        return [
            web.get(f"{self.prefix}/stream", self._endpoint.combined),
            web.get(f"{self.prefix}/ws/{{streams:.+}}", self._endpoint.raw),
            web.post(f"/_sim{self.prefix}/break_depth_chain", self._post_depth_break),
        ]

    def ws_url(self, server_ws_url: str) -> str:
        """The venue's WebSocket base URL on a server whose base URL is ``server_ws_url``."""
        return server_ws_url.rstrip("/") + self.prefix

    def break_depth_chain(self, times: int = 1) -> None:
        """Lose the next ``times`` depth diffs a connection would receive (see the feed)."""
        self.feed.break_depth_chain(times)

    async def start(self) -> None:
        """Start publishing (idempotent); call on the loop that serves the routes."""
        if self._task is None:
            self._task = asyncio.create_task(self.feed.run(self.hub))
            self._task.add_done_callback(_log_failure)

    async def stop(self) -> None:
        """Stop publishing and close every connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # A failure of the feed was logged when it happened (_log_failure).
            await asyncio.gather(task, return_exceptions=True)
        await self._endpoint.close_all()

    async def _load_tape(self, symbol: str, day: dt.date) -> DayTape:
        return await asyncio.to_thread(self.history.locked, self.market.tape, symbol, day)

    async def _post_depth_break(self, request: web.Request) -> web.Response:
        try:
            times = int(request.query.get("times", "1"))
            self.break_depth_chain(times)
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(
            {
                "pending": self.feed.pending_depth_breaks,
                "applied": self.faults.applied["depth_chain_broken"],
            }
        )


def _log_failure(task: asyncio.Task[None]) -> None:
    """A feed that dies stops the futures streams: say so at once, not at shutdown."""
    if not task.cancelled() and task.exception() is not None:
        log.error("futures feed failed", exc_info=task.exception())
