"""The sidecar's HTTP and WebSocket API (aiohttp, loopback by default).

    GET /health               200 while the process runs
    GET /ready                200 when the app's readiness check passes, else 503 with reasons
    GET /metrics              Prometheus text from the sidecar's own registry
    GET /risk                 the risk engine: state (ACTIVE, REDUCING, HALTED), paper equity,
                              drawdown, open positions, counters and recent state transitions
    GET /predictions/latest   newest served prediction per symbol (?symbol=BTCUSDT for one)
    WS  /predictions/stream   every new prediction as one JSON text message
                              (?symbols=BTCUSDT,ETHUSDT and ?roles=champion,canary,shadow filter;
                              shadow predictions are left out unless asked for)

Errors, on every route and method, are JSON of one shape with stable codes, and the stream's
filters are checked before the upgrade (see :mod:`streaming.api_errors`).

The producer never waits on a client: :meth:`PredictionHub.publish` is synchronous, encodes the
prediction once and appends it to each client's bounded queue, dropping that client's oldest
message when the queue is full. A per-client task drains the queue onto the socket.

The stream does not negotiate permessage-deflate. A prediction is a few hundred bytes, so
compression saves at most that much a message, while each compressing connection carries zlib
state (about 300 KB at the default 15-bit window, by zlib's own sizing). That memory is freed on
close but not given back to the system under connect/close churn: with clients offering
compression (browsers and the ``websockets`` library do) the serving process grew by tens of KB
per cycle, and it stays flat without it (``python -m bench api_cycles`` measures both).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from streaming.api_errors import (
    ApiError,
    ServerLog,
    json_errors,
    parse_roles,
    parse_symbol,
    parse_symbols,
)
from streaming.metrics import SidecarMetrics
from streaming.predictions import Prediction, Role, encode_prediction
from trading_assets.lib.risk import RiskSnapshot

log = logging.getLogger(__name__)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_CLIENT_QUEUE = 256
SERVED_ROLES: frozenset[Role] = frozenset({"champion", "canary"})
CLOSE_TIMEOUT_S = 2.0
NO_ROLE_LABEL = "none"  # the metrics' role label of a prediction no model made


class Readiness(msgspec.Struct, frozen=True):
    """The app's answer to "can I be sent traffic?"; ``reasons`` say what is missing."""

    ready: bool
    reasons: tuple[str, ...] = ()


ReadinessCheck = Callable[[], Readiness]
RiskReport = Callable[[], RiskSnapshot]


@dataclass(eq=False)
class StreamClient:
    """One WebSocket subscriber: its filters and its bounded, drop-oldest message queue."""

    symbols: frozenset[str] | None
    roles: frozenset[Role]
    capacity: int
    queue: deque[str] = field(init=False)
    dropped: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.queue = deque(maxlen=self.capacity)

    def wants(self, prediction: Prediction) -> bool:
        """True when the prediction passes this client's symbol and role filters; a record no
        model made stands in for the driving prediction, so it goes where served roles go."""
        role = prediction.role
        if role is None:
            if self.roles.isdisjoint(SERVED_ROLES):
                return False
        elif role not in self.roles:
            return False
        return self.symbols is None or prediction.symbol in self.symbols

    def offer(self, message: str) -> bool:
        """Queue ``message``; returns False when the oldest queued message had to go."""
        full = len(self.queue) == self.capacity
        if full:
            self.dropped += 1
        self.queue.append(message)  # a full deque(maxlen) discards from the left
        self.wake.set()
        return not full


class PredictionHub:
    """Newest prediction per symbol, fanned out to stream clients. Event-loop thread only."""

    def __init__(
        self, metrics: SidecarMetrics | None = None, client_queue: int = DEFAULT_CLIENT_QUEUE
    ) -> None:
        if client_queue < 1:
            raise ValueError("client_queue must hold at least one message")
        self.metrics = metrics
        self.client_queue = client_queue
        self.dropped_total = 0
        self.published_total = 0
        self._latest: dict[str, Prediction] = {}
        self._clients: set[StreamClient] = set()

    @property
    def client_count(self) -> int:
        """Connected stream clients."""
        return len(self._clients)

    def clients(self) -> list[StreamClient]:
        """The connected stream clients (a snapshot), e.g. to inspect their drop counts."""
        return list(self._clients)

    def latest(self) -> dict[str, Prediction]:
        """Newest serving prediction per symbol (shadow ones never serve)."""
        return dict(self._latest)

    def publish(self, prediction: Prediction, serves: bool | None = None) -> None:
        """Record and fan out one prediction; never blocks, whatever the clients do.

        ``serves``: whether decisions follow this prediction, which makes it the symbol's latest
        and sets the symbol's decision gauges (fallback level, risk score, trading allowed).
        When several models score one tick only one drives; by default a champion or canary
        prediction serves, and so does a record no model made (no driving model is loaded).
        """
        self.published_total += 1
        if serves is None:
            serves = prediction.role is None or prediction.role in SERVED_ROLES
        if serves:
            self._latest[prediction.symbol] = prediction
        self._observe(prediction, serves)
        message: str | None = None
        for client in self._clients:
            if not client.wants(prediction):
                continue
            if message is None:
                message = encode_prediction(prediction).decode()
            if not client.offer(message):
                self.dropped_total += 1
                if self.metrics is not None:
                    self.metrics.ws_dropped.inc()

    def subscribe(
        self, symbols: Collection[str] | None = None, roles: Collection[Role] = SERVED_ROLES
    ) -> StreamClient:
        """Register a stream client; ``symbols=None`` means every symbol."""
        client = StreamClient(
            frozenset(s.upper() for s in symbols) if symbols is not None else None,
            frozenset(roles),
            self.client_queue,
        )
        self._clients.add(client)
        self._count_clients()
        return client

    def unsubscribe(self, client: StreamClient) -> None:
        """Forget a stream client (idempotent)."""
        self._clients.discard(client)
        self._count_clients()

    def _count_clients(self) -> None:
        if self.metrics is not None:
            self.metrics.ws_clients.set(len(self._clients))

    def _observe(self, prediction: Prediction, serves: bool) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        role = prediction.role or NO_ROLE_LABEL
        metrics.predictions.labels(prediction.symbol, role).inc()
        metrics.prediction_latency.labels(role).observe(prediction.latency_ms / 1000)
        if serves:
            symbol = prediction.symbol
            metrics.fallback_level.labels(symbol).set(prediction.fallback_level)
            metrics.risk_score.labels(symbol).set(prediction.risk_score)
            metrics.trading_allowed.labels(symbol).set(float(prediction.should_trade))


def _not_ready(reason: str) -> Readiness:
    return Readiness(False, (reason,))


def _served_symbols(symbols: Iterable[str]) -> frozenset[str]:
    try:
        return frozenset(parse_symbol(symbol) for symbol in symbols)
    except ApiError as error:  # a configuration mistake, not a request's
        raise ValueError(f"served symbols: {error.message}") from None


class PredictionApi:
    """The aiohttp server for the API; an async context manager exposing ``url``.

    ``port=0`` picks a free port (tests). Stopping it closes every stream client with 1001
    (going away) before the listener goes, so clients reconnect elsewhere instead of timing out.
    ``symbols``: the symbols the sidecar serves; any other well-formed one is a 404. Without
    them a symbol is known once it has a prediction. ``stream_compress`` offers permessage-deflate
    to stream clients (off: see the module docs; the benchmark turns it on for comparison).
    """

    def __init__(
        self,
        hub: PredictionHub,
        metrics: SidecarMetrics,
        readiness: ReadinessCheck,
        host: str = DEFAULT_HOST,
        port: int = 0,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        risk: RiskReport | None = None,
        symbols: Iterable[str] | None = None,
        stream_compress: bool = False,
        paper: Callable[[], object] | None = None,
    ) -> None:
        self.hub, self.metrics, self.readiness = hub, metrics, readiness
        self.risk, self.paper = risk, paper
        self.symbols = None if symbols is None else _served_symbols(symbols)
        self.stream_compress = stream_compress
        self.host, self.port = host, port
        self.close_timeout_s = close_timeout_s
        self.started_ns = time.time_ns()
        self._sockets: dict[web.WebSocketResponse, asyncio.Task[None]] = {}
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    @property
    def url(self) -> str:
        """Base HTTP URL, e.g. ``http://127.0.0.1:8001``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; resolves ``port`` when it was 0."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, logger=ServerLog())
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]  # the one picked when port 0 was asked for
        self._runner = runner
        log.info("prediction API on %s", self.url)

    async def stop(self) -> None:
        """Close stream clients, then the listener (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()  # runs on_shutdown, which closes the sockets

    async def __aenter__(self) -> PredictionApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[json_errors])
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/risk", self._risk)
        app.router.add_get("/paper", self._paper)
        app.router.add_get("/predictions/latest", self._latest)
        app.router.add_get("/predictions/stream", self._stream)
        app.on_shutdown.append(self._close_streams)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        uptime = (time.time_ns() - self.started_ns) / 1e9
        return web.json_response({"status": "ok", "uptime_s": round(uptime, 3)})

    async def _ready(self, request: web.Request) -> web.Response:
        try:
            state = self.readiness()
        except Exception as exc:  # a broken check means "not ready", never a 500 page
            log.exception("readiness check failed")
            state = _not_ready(f"readiness check raised {type(exc).__name__}: {exc}")
        body = msgspec.json.encode(state)
        status = 200 if state.ready else 503
        return web.Response(body=body, status=status, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        # prometheus_client's content type carries parameters aiohttp wants passed as a header.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _risk(self, request: web.Request) -> web.Response:
        if self.risk is None:
            raise ApiError(404, "no_risk_engine", "this API serves no risk engine")
        snapshot = self.risk()
        body = msgspec.json.encode(
            {**msgspec.to_builtins(snapshot), "gross_exposure": snapshot.gross_exposure}
        )
        return web.Response(body=body, content_type="application/json")

    async def _paper(self, request: web.Request) -> web.Response:
        if self.paper is None:
            raise ApiError(404, "no_paper_accounts", "this API serves no paper accounts")
        return web.Response(body=msgspec.json.encode(self.paper()), content_type="application/json")

    async def _latest(self, request: web.Request) -> web.Response:
        latest = self.hub.latest()
        asked = request.query.getall("symbol", [])
        if len(asked) > 1:
            raise ApiError(400, "bad_symbol", "give one symbol, or none for every symbol")
        if asked:
            symbol = self._known(parse_symbol(asked[0]))
            prediction = latest.get(symbol)
            if prediction is None:
                raise ApiError(404, "no_prediction_yet", f"no prediction for {symbol} yet")
            body = encode_prediction(prediction)
        else:
            body = msgspec.json.encode(dict(sorted(latest.items())))
        return web.Response(body=body, content_type="application/json")

    def _known(self, symbol: str) -> str:
        """``symbol`` if the sidecar serves it, else a 404."""
        known = self.symbols if self.symbols is not None else self.hub.latest().keys()
        if symbol in known:
            return symbol
        served = ", ".join(sorted(known)) or "none yet"
        raise ApiError(404, "unknown_symbol", f"{symbol} is not served here (served: {served})")

    def _stream_filters(self, request: web.Request) -> tuple[list[str] | None, frozenset[Role]]:
        """The stream's symbol and role filters, refused before the upgrade when malformed."""
        query = request.query
        symbols = None
        if "symbols" in query:
            symbols = parse_symbols(query.getall("symbols"))
            if self.symbols is not None:  # without the served list, any symbol may come later
                symbols = [self._known(s) for s in symbols]
        roles = parse_roles(query.getall("roles")) if "roles" in query else SERVED_ROLES
        return symbols, roles

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        symbols, roles = self._stream_filters(request)
        if self._closing:
            raise ApiError(503, "shutting_down", "the server is shutting down")
        ws = web.WebSocketResponse(heartbeat=30.0, compress=self.stream_compress)
        await ws.prepare(request)
        client = self.hub.subscribe(symbols, roles)
        sender = asyncio.create_task(_send_queued(ws, client))
        self._sockets[ws] = sender
        try:
            async for message in ws:  # clients send nothing we act on; reading sees the close
                if message.type is WSMsgType.ERROR:
                    break
        finally:
            self.hub.unsubscribe(client)
            self._sockets.pop(ws, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _close_streams(self, app: web.Application) -> None:
        self._closing = True
        sockets = list(self._sockets.items())
        for _, sender in sockets:
            sender.cancel()
        await asyncio.gather(*(_close_socket(ws, self.close_timeout_s) for ws, _ in sockets))


async def _send_queued(ws: web.WebSocketResponse, client: StreamClient) -> None:
    """Drain one client's queue onto its socket; only this task ever waits on that client."""
    try:
        while not ws.closed:
            await client.wake.wait()
            client.wake.clear()
            while client.queue and not ws.closed:
                await ws.send_str(client.queue.popleft())
    except (ConnectionError, RuntimeError) as exc:  # the peer went away mid-send
        log.debug("stream client dropped: %s", exc)


async def _close_socket(ws: web.WebSocketResponse, timeout_s: float) -> None:
    # A client that stopped reading would hold a polite close forever; cut it after a moment.
    try:
        await asyncio.wait_for(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"),
            timeout_s,
        )
    except (TimeoutError, ConnectionError):
        log.debug("stream client did not acknowledge the close in time")
