"""Binance spot public-data clients: REST (raw response bytes) and WebSocket streams (raw frames).

Both return the exchange's bytes untouched so parsing stays in one place (``wire`` / ``parse``).
REST retries 429 / 418 (honouring ``Retry-After``) and 5xx / transport errors with exponential
backoff and jitter, a bounded number of times; other 4xx raise :class:`BinanceApiError` with
Binance's code and message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from streaming.venues.retry import RetryPolicy

Params = Mapping[str, str | int]


class BinanceApiError(Exception):
    """A request the exchange rejected (4xx other than 429), with Binance's code and message."""

    def __init__(self, status: int, code: int | None, msg: str, path: str) -> None:
        super().__init__(f"HTTP {status} from {path}: code={code} msg={msg}")
        self.status, self.code, self.msg, self.path = status, code, msg, path


class BinanceUnavailableError(Exception):
    """The exchange kept answering 429 / 5xx (or failing to connect) until retries ran out."""


def _rejection(response: httpx.Response) -> BinanceApiError:
    code: int | None = None
    msg = response.text
    try:
        body = response.json()
        code, msg = body.get("code"), body.get("msg", msg)
    except (ValueError, AttributeError):
        pass
    return BinanceApiError(response.status_code, code, msg, response.request.url.path)


def _settle(
    policy: RetryPolicy, path: str, attempt: int, outcome: httpx.Response | httpx.TransportError
) -> bytes | float:
    """The body of a successful attempt, or seconds to wait before the next one.

    Raises BinanceApiError for a final rejection and BinanceUnavailableError when the exchange
    is still unavailable after the last attempt. Shared by the sync and async clients, which
    differ only in how they send and sleep.
    """
    last = attempt >= policy.max_attempts
    if isinstance(outcome, httpx.TransportError):
        if last:
            raise BinanceUnavailableError(f"{path}: {outcome}") from outcome
        return policy.backoff(attempt)
    if outcome.is_success:
        return outcome.content
    status = outcome.status_code
    if status in (418, 429):  # rate limited (429) or banned for ignoring it (418)
        delay = policy.retry_after(outcome, attempt)
        if delay is None:
            raise BinanceUnavailableError(
                f"{path}: HTTP {status} with Retry-After "
                f"{outcome.headers.get('Retry-After')}s, longer than {policy.max_retry_after}s"
            )
    elif status >= 500:
        delay = policy.backoff(attempt)
    else:
        raise _rejection(outcome)
    if last:
        raise BinanceUnavailableError(f"{path}: gave up after {policy.max_attempts} attempts")
    return delay


def _clean(params: Mapping[str, Any]) -> dict[str, str | int]:
    return {k: v for k, v in params.items() if v is not None}


class _Endpoints:
    """Paths and parameters of the public market-data endpoints (shared by sync and async).

    Each method returns what ``_get`` returns: body bytes, or an awaitable of them.
    """

    def _get(self, path: str, params: Params | None = None) -> Any:
        raise NotImplementedError

    def get_bytes(self, path: str, params: Params | None = None) -> Any:
        """GET any path with retries (also used for bulk files)."""
        return self._get(path, params)

    def ping(self) -> Any:
        """``GET /api/v3/ping``: ``{}`` when the REST API is reachable."""
        return self._get("/api/v3/ping")

    def server_time(self) -> Any:
        """``GET /api/v3/time``: ``{"serverTime": <ms>}``."""
        return self._get("/api/v3/time")

    def exchange_info(self, symbol: str | None = None) -> Any:
        """``GET /api/v3/exchangeInfo`` for one symbol, or every symbol."""
        return self._get("/api/v3/exchangeInfo", _clean({"symbol": symbol}))

    def agg_trades(
        self,
        symbol: str,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> Any:
        """``GET /api/v3/aggTrades``: by id (``from_id``) or by time (ms, at most 1 h apart)."""
        params = {"symbol": symbol, "fromId": from_id, "startTime": start_time,
                  "endTime": end_time, "limit": limit}  # fmt: skip
        return self._get("/api/v3/aggTrades", _clean(params))

    def recent_trades(self, symbol: str, limit: int | None = None) -> Any:
        """``GET /api/v3/trades``: the most recent trades (limit 500 by default, 1000 at most)."""
        return self._get("/api/v3/trades", _clean({"symbol": symbol, "limit": limit}))

    def historical_trades(
        self, symbol: str, from_id: int | None = None, limit: int | None = None
    ) -> Any:
        """``GET /api/v3/historicalTrades``: trades from ``from_id`` on (most recent without)."""
        params = _clean({"symbol": symbol, "fromId": from_id, "limit": limit})
        return self._get("/api/v3/historicalTrades", params)

    def klines(
        self,
        symbol: str,
        interval: str = "1m",
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> Any:
        """``GET /api/v3/klines`` rows (JSON arrays), oldest first."""
        params = {"symbol": symbol, "interval": interval, "startTime": start_time,
                  "endTime": end_time, "limit": limit}  # fmt: skip
        return self._get("/api/v3/klines", _clean(params))

    def depth(self, symbol: str, limit: int | None = None) -> Any:
        """``GET /api/v3/depth`` order book snapshot (limit 100 by default, 5000 at most)."""
        return self._get("/api/v3/depth", _clean({"symbol": symbol, "limit": limit}))


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-MBX-APIKEY": api_key} if api_key else {}


class BinanceRestClient(_Endpoints):
    """Synchronous REST client; every method returns the response body bytes."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(api_key))

    def __enter__(self) -> BinanceRestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _get(self, path: str, params: Params | None = None) -> bytes:
        for attempt in itertools.count(1):  # _settle raises once the attempts are used up
            try:
                outcome: httpx.Response | httpx.TransportError = self._http.get(path, params=params)
            except httpx.TransportError as error:
                outcome = error
            result = _settle(self.retry, path, attempt, outcome)
            if isinstance(result, bytes):
                return result
            time.sleep(result)
        raise AssertionError("unreachable")


class AsyncBinanceRestClient(_Endpoints):
    """Async twin of :class:`BinanceRestClient`; methods are awaitables returning body bytes."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=_headers(api_key)
        )

    async def __aenter__(self) -> AsyncBinanceRestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _get(self, path: str, params: Params | None = None) -> bytes:
        for attempt in itertools.count(1):  # _settle raises once the attempts are used up
            try:
                outcome: httpx.Response | httpx.TransportError = await self._http.get(
                    path, params=params
                )
            except httpx.TransportError as error:
                outcome = error
            result = _settle(self.retry, path, attempt, outcome)
            if isinstance(result, bytes):
                return result
            await asyncio.sleep(result)
        raise AssertionError("unreachable")


class BinanceStreamClient:
    """Async iterator over ``(receive_ns, raw frame bytes)`` from Binance market streams.

    ``combined=True`` uses ``/stream?streams=a/b`` (frames wrapped in ``{"stream","data"}``);
    otherwise ``/ws/<stream>`` with raw payloads (one stream). Protocol pings are answered by the
    ``websockets`` library; the iteration ends when the server closes normally and raises
    ``websockets.ConnectionClosedError`` when the connection dies.
    """

    def __init__(
        self,
        ws_base_url: str,
        streams: Sequence[str],
        combined: bool = True,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        close_timeout: float = 2.0,
    ) -> None:
        if not streams:
            raise ValueError("at least one stream is required")
        if not combined and len(streams) != 1:
            raise ValueError("raw (non-combined) connections carry exactly one stream")
        base = ws_base_url.rstrip("/")
        self.url = (
            f"{base}/stream?streams={'/'.join(streams)}" if combined else f"{base}/ws/{streams[0]}"
        )
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._close_timeout = close_timeout
        self._connection: ClientConnection | None = None

    async def __aenter__(self) -> BinanceStreamClient:
        self._connection = await websockets.connect(
            self.url,
            open_timeout=self._open_timeout,
            ping_interval=self._ping_interval,
            close_timeout=self._close_timeout,
            max_size=1 << 22,
            max_queue=4096,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(receive_ns, frame)`` until the server closes the connection."""
        if self._connection is None:
            raise RuntimeError("use `async with BinanceStreamClient(...) as stream:` first")
        try:
            while True:
                message = await self._connection.recv(decode=False)
                yield time.time_ns(), message
        except websockets.ConnectionClosedOK:
            return

    async def send_json(self, payload: Mapping[str, Any]) -> None:
        """Send a request such as ``{"method": "SUBSCRIBE", "params": [...], "id": 1}``."""
        if self._connection is None:
            raise RuntimeError("not connected")
        await self._connection.send(json.dumps(payload))
