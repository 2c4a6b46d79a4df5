"""Binance USD-M futures (perpetuals) behind the venue interface, streaming.venues.base.Venue.

Streams are combined streams subscribed by URL (``<base>/stream?streams=btcusdt@trade/...``),
so nothing is sent once connected. Binance's production host routes USD-M streams by kind since
2026-04-23: ``wss://fstream.binance.com/public`` serves ``bookTicker`` and ``depth``,
``wss://fstream.binance.com/market`` serves ``markPrice`` (with ``aggTrade``, ``kline`` ...) and,
as far as is known, ``trade``, a stream Binance does not document for USD-M. The unrouted root
was retired that day (a connection to it may still open, and then stay silent). One connection
cannot carry both routes, so against the production host (its base URL without a route) the
default channels take two connections, one per route (:meth:`connections`, from
:func:`split_by_route`). :meth:`stream_url` refuses a channel that the base URL's route does not
serve; another host's base URL (the testnet, a local replay, the simulator) is used as given.

Trade ids are unique and increase, but the market trades' ids are not contiguous: liquidation
fills (insurance fund, ADL) take ids of their own and are left out, by the parser as by Binance's
REST trades. So ``contiguous_trade_ids`` is False and the feed hands trades out as they come.

REST trades by id are ``GET /fapi/v1/historicalTrades`` (market trades only, 500 a page, and only
the recent past: Binance documents one to three months). Unlike spot's it is a MARKET_DATA
endpoint that needs an API key (``X-MBX-APIKEY``); without one :meth:`trade_history` is None.
Its client is spot's REST client (same retries on 429 / 418 / 5xx), at the futures path.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from streaming.records import MarketType
from streaming.venues.base import Connections, one_connection
from streaming.venues.binance.history import BinanceTradeHistory, TradesEndpoint
from streaming.venues.binance.venue import combined_stream_url
from streaming.venues.binance_futures.parse import (
    MARKET,
    VENUE_NAME,
    BinanceFuturesFrameParser,
    parse_rest_trades,
)
from streaming.venues.retry import RetryPolicy

PUBLIC_ROUTE = "public"
MARKET_ROUTE = "market"
ROUTE_OF_CHANNEL: dict[str, str] = {
    "trade": MARKET_ROUTE,
    "bookTicker": PUBLIC_ROUTE,
    "markPrice": MARKET_ROUTE,
    "markPrice@1s": MARKET_ROUTE,
    "depth": PUBLIC_ROUTE,
    "depth@0ms": PUBLIC_ROUTE,
    "depth@100ms": PUBLIC_ROUTE,
    "depth@500ms": PUBLIC_ROUTE,
}
"""The route of Binance's production host (``wss://fstream.binance.com/<route>``) that serves
each channel read here."""

ROUTED_HOSTS = frozenset({"fstream.binance.com"})
"""Hosts that serve each kind of stream on its own route (``/public``, ``/market``)."""

HISTORICAL_TRADES_PATH = "/fapi/v1/historicalTrades"
MAX_PAGE = 500  # the largest historicalTrades page of USD-M futures


def split_by_route(channels: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``channels`` grouped by the route that serves them, for one feed per route."""
    unknown = [channel for channel in channels if channel not in ROUTE_OF_CHANNEL]
    if unknown:
        known = ", ".join(ROUTE_OF_CHANNEL)
        raise ValueError(f"{VENUE_NAME} reads no channel {', '.join(unknown)} (it reads {known})")
    routes: dict[str, tuple[str, ...]] = {}
    for channel in channels:
        route = ROUTE_OF_CHANNEL[channel]
        routes[route] = (*routes.get(route, ()), channel)
    return routes


FUTURES_TRADES = TradesEndpoint(HISTORICAL_TRADES_PATH, MAX_PAGE, parse_rest_trades)
"""USD-M's trades by id: market trades only, so their ids have holes."""


class BinanceUsdmFutures:
    """The Binance USD-M futures venue (perpetuals); ``VENUE`` is its one instance."""

    name: str = VENUE_NAME
    market: MarketType = MARKET
    default_channels: tuple[str, ...] = ("trade", "bookTicker", "markPrice@1s", "depth@0ms")
    contiguous_trade_ids: bool = False

    def symbol(self, text: str) -> str:
        """``btcusdt`` → ``BTCUSDT``; a dated delivery contract (``BTCUSDT_250328``) is refused,
        as this venue's records are perpetuals'."""
        symbol = text.strip().upper()
        if not symbol or "_" in symbol:
            raise ValueError(f"{text!r} is not a USD-M perpetual symbol (such as BTCUSDT)")
        return symbol

    def connections(self, ws_base_url: str, channels: Sequence[str]) -> Connections:
        """One connection per route on a routed host's root (``wss://fstream.binance.com``),
        else one to the base URL as given."""
        base = ws_base_url.rstrip("/")
        parts = urlsplit(base)
        if parts.hostname not in ROUTED_HOSTS or parts.path:
            return one_connection(ws_base_url, channels)
        return [(f"{base}/{route}", served) for route, served in split_by_route(channels).items()]

    def stream_url(self, ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        """``<base>/stream?streams=...``; raises ValueError for a channel not read here, or not
        served on the route that the base URL names (``.../public``, ``.../market``)."""
        base = ws_base_url.rstrip("/")
        route = base.rpartition("/")[2]
        for other, served in split_by_route(channels).items():
            if route in (PUBLIC_ROUTE, MARKET_ROUTE) and other != route:
                raise ValueError(
                    f"{base} serves the {route} streams, but {', '.join(served)} are served on "
                    f"/{other}: open one feed per route"
                )
        return combined_stream_url(base, symbols, channels)

    def subscriptions(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        return []

    def parser(self, symbols: Sequence[str]) -> BinanceFuturesFrameParser:
        return BinanceFuturesFrameParser()

    def trade_history(
        self, rest_base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None
    ) -> BinanceTradeHistory | None:
        """REST trades by id, or None without an API key (the endpoint requires one)."""
        if not api_key:
            return None
        return BinanceTradeHistory(
            rest_base_url, api_key=api_key, retry=retry, endpoint=FUTURES_TRADES
        )


VENUE = BinanceUsdmFutures()
