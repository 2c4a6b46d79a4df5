"""Coinbase Advanced Trade spot behind the venue interface (:class:`streaming.venues.base.Venue`).

One public WebSocket, ``wss://advanced-trade-ws.coinbase.com``, subscribed by message once
connected: one ``{"type":"subscribe","product_ids":[...],"channel":...}`` per channel (Coinbase
takes one channel a message). ``heartbeats`` is the connection's, not a product's: the
documentation says it needs no product ids, so none are sent (it accepts them too: the
recording's client sent some, and the answer listed the subscription as ``"heartbeats":
["heartbeats"]``, not per product). Subscribing to it keeps the other channels open, which
Coinbase closes after 60 to 90 s without updates. Symbols are Coinbase's product ids,
``BTC-USD``.

Trade ids count up by one per product (the real recording's trades run without a hole). There
is no REST trade history by id, hence :meth:`CoinbaseAdvancedTrade.trade_history` is None: the
Advanced Trade API's public trades (``/api/v3/brokerage/market/products/{id}/ticker``) are the
latest ``limit`` trades of a time window (``start`` / ``end`` in UNIX seconds), so a range of
ids cannot be asked for, only guessed at by time. Instead, every ``market_trades``
subscription starts with a snapshot of the product's recent trades (100 in the recording),
which the parser hands on: after a reconnect the feed takes the ids it missed from it and
drops the ones it had; a longer outage is recorded as an unfilled gap.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from streaming.records import SPOT, MarketType
from streaming.venues.base import Connections, one_connection
from streaming.venues.coinbase.parse import VENUE_NAME, CoinbaseFrameParser
from streaming.venues.retry import RetryPolicy

WS_URL = "wss://advanced-trade-ws.coinbase.com"
HEARTBEATS = "heartbeats"
CHANNELS = frozenset(
    {"level2", "market_trades", "ticker", "ticker_batch", "candles", "status", HEARTBEATS}
)
"""The public market-data channels Coinbase serves (``user`` and ``futures_balance_summary``
need a key and carry no market data)."""


def subscribe_message(channel: str, product_ids: Sequence[str]) -> str:
    """The JSON subscribe message of one channel (no product ids for ``heartbeats``)."""
    message: dict[str, object] = {"type": "subscribe", "channel": channel}
    if channel != HEARTBEATS:
        message["product_ids"] = list(product_ids)
    return msgspec.json.encode(message).decode()


class CoinbaseAdvancedTrade:
    """The Coinbase Advanced Trade spot venue; ``VENUE`` is its one instance."""

    name = VENUE_NAME
    market: MarketType = SPOT
    default_channels: tuple[str, ...] = ("level2", "market_trades", "ticker", HEARTBEATS)
    contiguous_trade_ids = True

    def symbol(self, text: str) -> str:
        return text.strip().upper()

    def connections(self, ws_base_url: str, channels: Sequence[str]) -> Connections:
        return one_connection(ws_base_url, channels)

    def stream_url(self, ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        """The base URL itself: what to stream is told by :meth:`subscriptions`."""
        if not symbols or not channels:
            raise ValueError("at least one symbol and one channel are required")
        return ws_base_url

    def subscriptions(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        """One subscribe message per channel, in the order given."""
        unknown = sorted(set(channels) - CHANNELS)
        if unknown:
            known = ", ".join(sorted(CHANNELS))
            raise ValueError(f"unknown Coinbase channels {unknown}: the channels are {known}")
        product_ids = [self.symbol(s) for s in symbols]
        return [subscribe_message(channel, product_ids) for channel in channels]

    def parser(self, symbols: Sequence[str]) -> CoinbaseFrameParser:
        return CoinbaseFrameParser()

    def trade_history(
        self, rest_base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        """None: Coinbase serves no trades by id over REST (see the module's docstring)."""
        return None


VENUE = CoinbaseAdvancedTrade()
