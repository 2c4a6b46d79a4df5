"""Fetching missed trades over REST by trade id (``/api/v3/historicalTrades?fromId=``).

Rate limits are the REST client's business: it waits out 429 / 418 ``Retry-After`` and retries
5xx with backoff, and raises once it gives up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx

from streaming.venues.binance.client import (
    AsyncBinanceRestClient,
    BinanceApiError,
    BinanceUnavailableError,
)
from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.parse import parse_rest_trades
from streaming.venues.binance.records import Trade

MAX_PAGE = 1000  # Binance's largest historicalTrades page
SHORT_PAGE_RETRIES = 3  # REST may lag the stream by a moment: ask again before giving up
SHORT_PAGE_DELAY_S = 0.2


async def fetch_trades(
    rest: AsyncBinanceRestClient,
    symbol: str,
    from_id: int,
    last_id: int | None = None,
    max_trades: int = 100_000,
    page_limit: int = MAX_PAGE,
) -> list[Trade]:
    """Trades of ``symbol`` from ``from_id`` on, oldest first, in pages of ``page_limit``.

    With ``last_id`` it stops there, asking again a few times when the exchange does not have
    the range yet; without, it stops when a page comes back short (caught up with the
    exchange). Never more than ``max_trades``. The result may fall short of ``last_id``: the
    caller decides what to do with what is still missing.
    """
    if not 1 <= page_limit <= MAX_PAGE:
        raise ValueError(f"page_limit must be within 1..{MAX_PAGE}")
    trades: list[Trade] = []
    next_id, short_pages = from_id, 0
    while len(trades) < max_trades and (last_id is None or next_id <= last_id):
        wanted = max_trades - len(trades)
        if last_id is not None:
            wanted = min(wanted, last_id - next_id + 1)
        limit = min(page_limit, wanted)
        body = await rest.historical_trades(symbol, from_id=next_id, limit=limit)
        page = [t for t in parse_rest_trades(body, symbol, time.time_ns()) if t.trade_id >= next_id]
        if page:
            trades += page
            next_id = page[-1].trade_id + 1
        if len(page) < limit:
            if last_id is None or short_pages >= SHORT_PAGE_RETRIES:
                break
            short_pages += 1
            await asyncio.sleep(SHORT_PAGE_DELAY_S)
    return trades


FETCH_FAILURES = (BinanceUnavailableError, BinanceApiError, BinanceParseError, httpx.HTTPError)
"""What a fetch raises when the exchange cannot serve it now (worth retrying later)."""


class MissingTradesError(RuntimeError):
    """The exchange served none of a trade id range it should hold."""


async def trade_chunks(
    rest: AsyncBinanceRestClient, symbol: str, first_id: int, last_id: int, chunk: int = 10_000
) -> AsyncIterator[list[Trade]]:
    """Trades ``first_id..last_id`` of ``symbol``, oldest first, ``chunk`` at a time, so that a
    long range (a landing paused for an hour) is never held in memory whole.

    Ids the exchange skips are skipped (its tape has no hole: none are); a range of which it
    serves nothing raises :class:`MissingTradesError`, and a failed request one of
    :data:`FETCH_FAILURES`.
    """
    next_id = first_id
    while next_id <= last_id:
        trades = await fetch_trades(rest, symbol, next_id, last_id, max_trades=chunk)
        if not trades:
            raise MissingTradesError(
                f"the exchange served no {symbol} trade of ids {next_id}..{last_id}"
            )
        yield trades
        next_id = trades[-1].trade_id + 1
