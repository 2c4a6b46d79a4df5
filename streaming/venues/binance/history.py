"""Binance's trades by id over REST (``/api/v3/historicalTrades?fromId=``, and the futures'
``/fapi/v1/historicalTrades``), the feed's gap fill.

Rate limits are the REST client's business: it waits out 429 / 418 ``Retry-After`` and retries
5xx with backoff, and raises once it gives up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from streaming.records import Trade
from streaming.venues.binance.client import (
    AsyncBinanceRestClient,
    BinanceApiError,
    BinanceUnavailableError,
)
from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.parse import parse_rest_trades
from streaming.venues.retry import RetryPolicy

MAX_PAGE = 1000  # Binance's largest historicalTrades page
SHORT_PAGE_RETRIES = 3  # REST may lag the stream by a moment: ask again before giving up
SHORT_PAGE_DELAY_S = 0.2


RestTradesParser = Callable[[bytes, str, int], list[Trade]]
"""A REST trades answer (bytes, the symbol, its receive time) to its trades."""


@dataclass(frozen=True)
class TradesEndpoint:
    """Where a Binance market serves trades by id: its path, largest page and parser."""

    path: str
    max_page: int
    parse: RestTradesParser


SPOT_TRADES = TradesEndpoint("/api/v3/historicalTrades", MAX_PAGE, parse_rest_trades)


async def fetch_trades(
    rest: AsyncBinanceRestClient,
    symbol: str,
    from_id: int,
    last_id: int | None = None,
    max_trades: int = 100_000,
    page_limit: int | None = None,
    endpoint: TradesEndpoint = SPOT_TRADES,
) -> list[Trade]:
    """Trades of ``symbol`` from ``from_id`` on, oldest first, in pages of ``page_limit``
    (the endpoint's largest page by default).

    Each page is asked from the id after the last one received, so ids the exchange skips (the
    futures' non-market fills) are skipped too. With ``last_id`` it stops there, asking again a
    few times when the exchange does not have the range yet; without, it stops when a page comes
    back short (caught up with the exchange). Never more than ``max_trades``. The result may
    fall short of ``last_id``: the caller decides what to do with what is still missing.
    """
    page_limit = endpoint.max_page if page_limit is None else page_limit
    if not 1 <= page_limit <= endpoint.max_page:
        raise ValueError(f"page_limit must be within 1..{endpoint.max_page}")
    trades: list[Trade] = []
    next_id, short_pages = from_id, 0
    while len(trades) < max_trades and (last_id is None or next_id <= last_id):
        wanted = max_trades - len(trades)
        if last_id is not None:  # at most one trade per id
            wanted = min(wanted, last_id - next_id + 1)
        limit = min(page_limit, wanted)
        params = {"symbol": symbol, "fromId": next_id, "limit": limit}
        body = await rest.get_bytes(endpoint.path, params)
        page = [t for t in endpoint.parse(body, symbol, time.time_ns()) if t.trade_id >= next_id]
        if page:
            next_id = page[-1].trade_id + 1
        trades += page if last_id is None else [t for t in page if t.trade_id <= last_id]
        if len(page) < limit:
            if last_id is None or next_id > last_id or short_pages >= SHORT_PAGE_RETRIES:
                break
            short_pages += 1
            await asyncio.sleep(SHORT_PAGE_DELAY_S)
    return trades


class BinanceTradeHistory:
    """:class:`streaming.venues.base.TradeHistory` over a Binance market's REST trades by id."""

    failures: tuple[type[BaseException], ...] = (
        BinanceUnavailableError, BinanceApiError, BinanceParseError, httpx.HTTPError,
    )  # fmt: skip

    def __init__(
        self,
        rest_base_url: str,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        endpoint: TradesEndpoint = SPOT_TRADES,
    ) -> None:
        self.rest = AsyncBinanceRestClient(rest_base_url, retry=retry, api_key=api_key)
        self.endpoint = endpoint

    async def trades(
        self, symbol: str, first_id: int, last_id: int | None, max_trades: int
    ) -> list[Trade]:
        return await fetch_trades(
            self.rest, symbol, first_id, last_id, max_trades, endpoint=self.endpoint
        )

    async def aclose(self) -> None:
        await self.rest.aclose()
