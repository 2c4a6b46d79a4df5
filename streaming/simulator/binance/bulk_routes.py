"""data.binance.vision's spot daily files: ``/data/spot/daily/{trades,aggTrades,klines}/...``.

Each ``.zip`` has a ``.zip.CHECKSUM`` sibling holding ``<sha256 hex>  <file name>``. Days before
the listing date, today and later answer 404, like the real bucket (a day is published after it
ends). Single byte ranges are honoured with 206 so downloads can resume. A day's trades zip can be
served broken, or marked empty by a ``.zip.EMPTY`` sibling, through ``/_sim/bulk_faults`` (see
:mod:`streaming.simulator.binance.bulk_faults`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from functools import partial

from aiohttp import web

from streaming.simulator.binance.bulk_faults import (
    BulkFaultRule,
    BulkFaults,
    broken_zip,
    empty_marker,
    published_checksum,
)
from streaming.simulator.history import MarketHistory
from streaming.simulator.synthetic import day_of_us

_FILE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades|1m)-(?P<day>\d{4}-\d{2}-\d{2})"
    r"\.zip(?P<suffix>\.CHECKSUM|\.EMPTY)?$"
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class BulkFiles:
    """Serves zipped daily CSVs generated from the synthetic market."""

    def __init__(
        self, history: MarketHistory, symbols: list[str], clock_ns: Callable[[], int]
    ) -> None:
        self.history = history
        self.symbols = {s.upper() for s in symbols}
        self.clock_ns = clock_ns
        self.faults = BulkFaults()

    def routes(self) -> list[web.RouteDef]:
        """The bulk-file routes and their fault knob, for ``app.add_routes``."""
        return [
            web.get("/data/spot/daily/{kind:trades|aggTrades}/{symbol}/{name}", self.serve),
            web.get("/data/spot/daily/klines/{symbol}/1m/{name}", self.serve),
            web.get("/_sim/bulk_faults", self._get_faults),
            web.post("/_sim/bulk_faults", self._post_fault),
            web.delete("/_sim/bulk_faults", self._delete_faults),
        ]

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_json())

    async def _post_fault(self, request: web.Request) -> web.Response:
        """Break one (symbol, day)'s trades zip: ``{"symbol", "day", "fault"[, "line"]}``."""
        try:
            self.faults.set(BulkFaultRule.from_json(await request.json()))
        except ValueError as error:  # a malformed body included (JSONDecodeError)
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(self.faults.as_json())

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response(self.faults.as_json())

    def _zip_builder(self, kind: str) -> Callable[[str, dt.date], bytes]:
        market = self.history.market
        return {
            "trades": market.day_trades_csv_zip,
            "aggTrades": market.day_agg_trades_csv_zip,
            "1m": market.day_klines_csv_zip,
        }[kind]

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """One daily ``.zip`` (byte ranges honoured) or its ``.CHECKSUM``."""
        name = request.match_info["name"]
        match = _FILE_NAME.match(name)
        symbol = request.match_info["symbol"]
        folder_kind = request.match_info.get("kind", "1m")
        if match is None or match["symbol"] != symbol or match["kind"] != folder_kind:
            raise web.HTTPNotFound()
        try:
            day = dt.date.fromisoformat(match["day"])
        except ValueError as error:
            raise web.HTTPNotFound() from error
        today = day_of_us(self.clock_ns() // 1000)
        if symbol not in self.symbols or not self.history.listing_date <= day < today:
            raise web.HTTPNotFound()
        build = partial(self.history.locked, self._zip_builder(match["kind"]), symbol, day)
        payload: bytes = await asyncio.to_thread(build)
        rule = self.faults.rule_for(symbol, day) if match["kind"] == "trades" else None
        if rule is not None:
            agg_zip = partial(self.history.locked, self._zip_builder("aggTrades"), symbol, day)
            payload = await asyncio.to_thread(broken_zip, payload, rule, agg_zip)
        suffix = match["suffix"]
        zip_name = name.removesuffix(suffix or "")
        if suffix == ".CHECKSUM":
            text = published_checksum(payload, zip_name, rule)
            return web.Response(text=text, content_type="text/plain")
        if suffix == ".EMPTY":
            marker = empty_marker(payload, zip_name, rule)
            if marker is None:
                raise web.HTTPNotFound()
            return web.Response(text=marker, content_type="text/plain")
        return _ranged(request, payload)


def _ranged(request: web.Request, payload: bytes) -> web.Response:
    headers = {"Accept-Ranges": "bytes"}
    requested = request.headers.get("Range")
    match = _RANGE.match(requested or "")
    if match is None or not (match[1] or match[2]):
        return web.Response(body=payload, content_type="application/zip", headers=headers)
    size = len(payload)
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]) if match[2] else size - 1, size - 1)
    else:
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return web.Response(
        status=206, body=payload[start : end + 1], content_type="application/zip", headers=headers
    )
