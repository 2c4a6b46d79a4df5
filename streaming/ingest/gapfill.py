"""Fetching a long range of missed trades in chunks, from any venue's REST trade history."""

from __future__ import annotations

from collections.abc import AsyncIterator

from streaming.records import Trade
from streaming.venues.base import TradeHistory


class MissingTradesError(RuntimeError):
    """The exchange served none of a trade id range it should hold."""


async def trade_chunks(
    history: TradeHistory, symbol: str, first_id: int, last_id: int, chunk: int = 10_000
) -> AsyncIterator[list[Trade]]:
    """Trades ``first_id..last_id`` of ``symbol``, oldest first, ``chunk`` at a time, so that a
    long range (a landing paused for an hour) is never held in memory whole.

    Ids the exchange skips are skipped (its tape has no hole: none are); a range of which it
    serves nothing raises :class:`MissingTradesError`, and a failed request one of
    ``history.failures``.
    """
    next_id = first_id
    while next_id <= last_id:
        trades = await history.trades(symbol, next_id, last_id, chunk)
        if not trades:
            raise MissingTradesError(
                f"the exchange served no {symbol} trade of ids {next_id}..{last_id}"
            )
        yield trades
        next_id = trades[-1].trade_id + 1
