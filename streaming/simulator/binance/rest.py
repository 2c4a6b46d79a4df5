"""Binance spot REST endpoints (``/api/v3/...``) with Binance's parameter rules and error bodies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import polars as pl
from aiohttp import web

from streaming.simulator.binance.bulk_format import format_e8
from streaming.simulator.history import MarketHistory

HOUR_MS = 3_600_000


class BinanceApiError(Exception):
    """A request Binance would reject: rendered as ``{"code": ..., "msg": ...}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def response(self) -> web.Response:
        """The error as Binance renders it."""
        body = json.dumps({"code": self.code, "msg": self.msg}, separators=(",", ":"))
        return web.Response(status=self.status, text=body, content_type="application/json")


def _missing(name: str) -> BinanceApiError:
    return BinanceApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def _limit(query: Mapping[str, str], default: int, maximum: int, truncate: bool = False) -> int:
    """The ``limit`` parameter; above ``maximum`` it is an error, or cut down when ``truncate``."""
    limit = _int_param(query, "limit")
    if limit is None:
        return default
    if limit < 1 or (limit > maximum and not truncate):
        raise BinanceApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, maximum)


def _json(payload: object) -> web.Response:
    return web.Response(
        body=json.dumps(payload, separators=(",", ":")).encode(), content_type="application/json"
    )


def trades_json(frame: pl.DataFrame) -> list[dict]:
    """``/api/v3/trades`` objects for a numeric trades frame."""
    return [
        {
            "id": row["id"],
            "price": format_e8(row["price_e8"]),
            "qty": format_e8(row["qty_e8"]),
            "quoteQty": format_e8(row["quote_e8"]),
            "time": row["time_us"] // 1000,
            "isBuyerMaker": row["is_buyer_maker"],
            "isBestMatch": True,
        }
        for row in frame.iter_rows(named=True)
    ]


def agg_trades_json(frame: pl.DataFrame) -> list[dict]:
    """``/api/v3/aggTrades`` objects for a numeric aggTrades frame."""
    return [
        {
            "a": row["agg_id"],
            "p": format_e8(row["price_e8"]),
            "q": format_e8(row["qty_e8"]),
            "f": row["first_trade_id"],
            "l": row["last_trade_id"],
            "T": row["time_us"] // 1000,
            "m": row["is_buyer_maker"],
            "M": True,
        }
        for row in frame.iter_rows(named=True)
    ]


def klines_json(frame: pl.DataFrame) -> list[list]:
    """``/api/v3/klines`` rows for numeric 1m bars."""
    return [
        [
            row["open_time_us"] // 1000,
            *(format_e8(row[k]) for k in ("open", "high", "low", "close", "volume")),
            row["open_time_us"] // 1000 + 59_999,
            format_e8(row["quote_volume"]),
            row["count"],
            format_e8(row["taker_buy_volume"]),
            format_e8(row["taker_buy_quote_volume"]),
            "0",
        ]
        for row in frame.iter_rows(named=True)
    ]


class RestApi:
    """Handlers for the public market-data endpoints of Binance spot."""

    def __init__(
        self,
        history: MarketHistory,
        symbols: list[str],
        clock_ns: Callable[[], int],
        depth_snapshots: Mapping[str, bytes] | None = None,
        live_depth: Callable[[str, int], Awaitable[bytes | None]] | None = None,
    ) -> None:
        self.history = history
        self.symbols = [s.upper() for s in symbols]
        self.clock_ns = clock_ns
        self.depth_snapshots = dict(depth_snapshots or {})
        # The live feed's book as its depth subscribers hold it (None: none is running).
        self.live_depth = live_depth

    def routes(self) -> list[web.RouteDef]:
        """The endpoints, for ``app.add_routes``."""
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.server_time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/aggTrades", self.agg_trades),
            web.get("/api/v3/trades", self.recent_trades),
            web.get("/api/v3/historicalTrades", self.historical_trades),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/depth", self.depth),
        ]

    async def _run(self, fn: Callable, *args):
        """Generation is CPU bound: keep it off the event loop that paces the live streams."""
        return await asyncio.to_thread(partial(self.history.locked, fn, *args))

    def _symbol(self, query: Mapping[str, str]) -> str:
        symbol = query.get("symbol")
        if not symbol:
            raise _missing("symbol")
        if symbol.upper() != symbol or symbol not in self.symbols:
            raise BinanceApiError(-1121, "Invalid symbol.")
        return symbol

    def _now_us(self) -> int:
        return self.clock_ns() // 1000

    async def ping(self, request: web.Request) -> web.Response:
        """``/api/v3/ping``."""
        return _json({})

    async def server_time(self, request: web.Request) -> web.Response:
        """``/api/v3/time``."""
        return _json({"serverTime": self.clock_ns() // 1_000_000})

    async def exchange_info(self, request: web.Request) -> web.Response:
        """``/api/v3/exchangeInfo`` for ``symbol``, ``symbols=["A","B"]`` or every symbol."""
        wanted = self.symbols
        if "symbol" in request.query:
            wanted = [self._symbol(request.query)]
        elif "symbols" in request.query:
            try:
                wanted = json.loads(request.query["symbols"])
            except ValueError:
                wanted = None
            if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
                raise BinanceApiError(-1100, "Illegal characters found in parameter 'symbols'.")
            if not set(wanted) <= set(self.symbols):
                raise BinanceApiError(-1121, "Invalid symbol.")
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.clock_ns() // 1_000_000,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [self._symbol_info(s) for s in wanted],
            }
        )

    def _symbol_info(self, symbol: str) -> dict:
        inst = self.history.market.instrument(symbol)
        base = symbol.removesuffix("USDT") if symbol.endswith("USDT") else symbol[:-3]
        return {
            "symbol": symbol,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": symbol[len(base) :],
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "isSpotTradingAllowed": True,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": format_e8(inst.tick_e8),
                    "maxPrice": "1000000.00000000",
                    "tickSize": format_e8(inst.tick_e8),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": format_e8(inst.step_e8),
                    "maxQty": "9000.00000000",
                    "stepSize": format_e8(inst.step_e8),
                },
            ],
            "permissions": ["SPOT"],
        }

    async def agg_trades(self, request: web.Request) -> web.Response:
        """``/api/v3/aggTrades``: by ``fromId``, by a window of at most an hour, or most recent."""
        query = request.query
        symbol = self._symbol(query)
        limit = _limit(query, 500, 1000)
        from_id = _int_param(query, "fromId")
        start, end = _int_param(query, "startTime"), _int_param(query, "endTime")
        now_us = self._now_us()
        if from_id is not None and (start is not None or end is not None):
            raise BinanceApiError(-1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and end - start > HOUR_MS:
            raise BinanceApiError(-1127, "More than 1 hours between startTime and endTime.")
        if from_id is not None:
            frame = await self._run(self.history.aggs_from_id, symbol, from_id, limit, now_us)
        elif start is not None or end is not None:
            start = end - HOUR_MS if start is None and end is not None else start
            end = start + HOUR_MS if end is None and start is not None else end
            assert start is not None and end is not None
            frame = await self._run(
                self.history.aggs_between, symbol, start * 1000, end * 1000 + 999, limit, now_us
            )
        else:
            frame = await self._run(self.history.recent_aggs, symbol, limit, now_us)
        return _json(agg_trades_json(frame))

    async def recent_trades(self, request: web.Request) -> web.Response:
        """``/api/v3/trades``: the most recent trades."""
        return await self._trades(request, by_id=False)

    async def historical_trades(self, request: web.Request) -> web.Response:
        """``/api/v3/historicalTrades``: trades from ``fromId`` on, the most recent without it."""
        return await self._trades(request, by_id=True)

    async def _trades(self, request: web.Request, by_id: bool) -> web.Response:
        symbol = self._symbol(request.query)
        limit = _limit(request.query, 500, 1000)
        from_id = _int_param(request.query, "fromId") if by_id else None
        now_us = self._now_us()
        if from_id is None:
            frame = await self._run(self.history.recent_trades, symbol, limit, now_us)
        else:
            frame = await self._run(self.history.trades_from_id, symbol, from_id, limit, now_us)
        return _json(trades_json(frame))

    async def klines(self, request: web.Request) -> web.Response:
        """``/api/v3/klines`` (1m only): open time in [startTime, endTime], most recent default."""
        query = request.query
        symbol = self._symbol(query)
        interval = query.get("interval")
        if not interval:
            raise _missing("interval")
        if interval != "1m":
            raise BinanceApiError(-1120, "Invalid interval.")
        limit = _limit(query, 500, 1000)
        start, end = _int_param(query, "startTime"), _int_param(query, "endTime")
        if start is not None and end is not None and start > end:
            raise BinanceApiError(-1023, "Start time is greater than end time.")
        frame = await self._run(
            self.history.klines,
            symbol,
            None if start is None else start * 1000,
            None if end is None else end * 1000,
            limit,
            self._now_us(),
        )
        return _json(klines_json(frame))

    async def depth(self, request: web.Request) -> web.Response:
        """``/api/v3/depth``; like Binance, a limit above 5000 is cut to 5000, not refused."""
        symbol = self._symbol(request.query)
        limit = _limit(request.query, 100, 5000, truncate=True)
        if symbol in self.depth_snapshots:
            return web.Response(body=self.depth_snapshots[symbol], content_type="application/json")
        body = await self.live_depth(symbol, limit) if self.live_depth is not None else None
        if body is None:
            body = await self._run(self.history.depth, symbol, limit, self._now_us())
        return web.Response(body=body, content_type="application/json")
