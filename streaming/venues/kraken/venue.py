"""Kraken spot behind the venue interface (:class:`streaming.venues.base.Venue`).

The stream is Kraken's WebSocket v2 (``wss://ws.kraken.com/v2``): one URL for everything, and
one subscribe message per channel once connected, for every symbol at once::

    {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true}}
    {"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"],"event_trigger":"bbo"}}
    {"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}

- ``trade`` asks for Kraken's snapshot of the pair's last 50 trades: after a reconnect it brings
  the trades the connection missed, if they are that recent (the feed drops the ones it had).
- ``ticker`` is published on every change of the best bid or offer (``bbo``), not only on
  trades (Kraken's default), which is what a book ticker is.
- ``book`` keeps the top 10 levels; the parser proves them with Kraken's checksum.

v2 trade ids count up by one per trade of the pair, so ``contiguous_trade_ids`` is True. Kraken's
REST trades (``/0/public/Trades``) carry the same ids but are paged by time, not by id, so
``trade_history`` is None for now and the feed records any hole it cannot fill. Symbols are
spelled ``BTC/USD`` (v1's ``XBT`` and ``XDG`` are BTC and DOGE).

:data:`KRAKEN_V1` is the same venue on WebSocket v1 (``wss://ws.kraken.com``), the protocol of
the 2021 captures: its trades carry no id, so its ids are not contiguous.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from streaming.records import SPOT, MarketType
from streaming.venues.base import Connections, one_connection
from streaming.venues.kraken.parse import DEFAULT_BOOK_DEPTH, VENUE_NAME, KrakenFrameParser
from streaming.venues.kraken.parse_v1 import KrakenV1FrameParser
from streaming.venues.kraken.wire import v1_pair, v2_symbol
from streaming.venues.retry import RetryPolicy

WS_URL = "wss://ws.kraken.com/v2"
WS_V1_URL = "wss://ws.kraken.com"
BOOK_DEPTHS = (10, 25, 100, 500, 1000)  # the depths Kraken serves
CHANNELS = ("trade", "ticker", "book")


def _checked(symbols: Sequence[str], channels: Sequence[str]) -> None:
    if not symbols or not channels:
        raise ValueError("at least one symbol and one channel are required")
    unknown = [channel for channel in channels if channel not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown Kraken channels {unknown}: the channels are {list(CHANNELS)}")


def _message(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"))


class KrakenSpot:
    """The Kraken spot venue on WebSocket v2; ``VENUE`` is its one instance."""

    name = VENUE_NAME
    market: MarketType = SPOT
    default_channels: tuple[str, ...] = ("trade", "ticker")
    contiguous_trade_ids = True

    def __init__(self, book_depth: int = DEFAULT_BOOK_DEPTH) -> None:
        if book_depth not in BOOK_DEPTHS:
            raise ValueError(f"Kraken serves book depths {BOOK_DEPTHS}, not {book_depth}")
        self.book_depth = book_depth

    def symbol(self, text: str) -> str:
        """``btc/usd``, ``btc-usd`` or ``XBT/USD`` → ``BTC/USD``."""
        return v2_symbol(text.strip().upper().replace("-", "/"))

    def connections(self, ws_base_url: str, channels: Sequence[str]) -> Connections:
        return one_connection(ws_base_url, channels)

    def stream_url(self, ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        """The base URL (``wss://ws.kraken.com/v2`` when none is given): subscriptions are sent."""
        return ws_base_url.rstrip("/") or WS_URL

    def subscriptions(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        _checked(symbols, channels)
        pairs = [self.symbol(symbol) for symbol in symbols]
        messages: list[str] = []
        for channel in channels:
            params: dict[str, object] = {"channel": channel, "symbol": pairs}
            if channel == "trade":
                params["snapshot"] = True
            elif channel == "ticker":
                params["event_trigger"] = "bbo"
            else:
                params["depth"] = self.book_depth
            messages.append(_message({"method": "subscribe", "params": params}))
        return messages

    def parser(self, symbols: Sequence[str]) -> KrakenFrameParser:
        return KrakenFrameParser(self.book_depth)

    def trade_history(
        self, rest_base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        return None


class KrakenSpotV1:
    """The Kraken spot venue on WebSocket v1 (the 2021 captures' protocol)."""

    name = VENUE_NAME
    market: MarketType = SPOT
    default_channels: tuple[str, ...] = ("trade", "ticker")
    contiguous_trade_ids = False  # v1 trades carry no id: the parser counts them per connection

    def __init__(self, book_depth: int = DEFAULT_BOOK_DEPTH) -> None:
        if book_depth not in BOOK_DEPTHS:
            raise ValueError(f"Kraken serves book depths {BOOK_DEPTHS}, not {book_depth}")
        self.book_depth = book_depth

    def symbol(self, text: str) -> str:
        """As the records spell it, ``BTC/USD`` (v1's own ``XBT/USD`` is sent on the wire)."""
        return v2_symbol(text.strip().upper().replace("-", "/"))

    def connections(self, ws_base_url: str, channels: Sequence[str]) -> Connections:
        return one_connection(ws_base_url, channels)

    def stream_url(self, ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        return ws_base_url.rstrip("/") or WS_V1_URL

    def subscriptions(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        _checked(symbols, channels)
        pairs = [v1_pair(self.symbol(symbol)) for symbol in symbols]
        messages: list[str] = []
        for channel in channels:
            subscription: dict[str, object] = {"name": channel}
            if channel == "book":
                subscription["depth"] = self.book_depth
            messages.append(
                _message({"event": "subscribe", "pair": pairs, "subscription": subscription})
            )
        return messages

    def parser(self, symbols: Sequence[str]) -> KrakenV1FrameParser:
        return KrakenV1FrameParser()

    def trade_history(
        self, rest_base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None
    ) -> None:
        return None


VENUE = KrakenSpot()
KRAKEN_V1 = KrakenSpotV1()
