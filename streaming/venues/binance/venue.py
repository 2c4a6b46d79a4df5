"""Binance spot behind the venue interface (:class:`streaming.venues.base.Venue`).

Streams are subscribed by URL (``/stream?streams=btcusdt@trade/...``), so nothing is sent once
connected. Trade ids count up by one per symbol, and ``/api/v3/historicalTrades`` serves any
range of them, so the feed fills every hole. Frames of streams seen before take one decode
(:mod:`streaming.venues.binance.frames`), the rest the checked way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from streaming.records import SPOT, MarketType
from streaming.venues.base import Connections, ParsedFrame, one_connection
from streaming.venues.binance.history import BinanceTradeHistory
from streaming.venues.binance.parse import DECODE_ERRORS, FAST_FRAMES, parse_stream_frame
from streaming.venues.retry import RetryPolicy


def combined_stream_url(ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
    """``<base>/stream?streams=btcusdt@trade/btcusdt@bookTicker/...`` for every symbol."""
    if not symbols or not channels:
        raise ValueError("at least one symbol and one channel are required")
    streams = [f"{symbol.lower()}@{channel}" for symbol in symbols for channel in channels]
    return f"{ws_base_url.rstrip('/')}/stream?streams={'/'.join(streams)}"


class BinanceFrameParser:
    """Combined-stream frames to records; stateless (the fast streams learned are global)."""

    __slots__ = ()

    def parse(self, raw: bytes, receive_ns: int) -> ParsedFrame:
        try:  # parse_stream_frame, less one call for the frames it knows (text: checked)
            if type(raw) is bytes:
                return FAST_FRAMES.decoder.decode(raw).build(receive_ns, raw)
            return cast(ParsedFrame, parse_stream_frame(raw, receive_ns))
        except DECODE_ERRORS:
            return cast(ParsedFrame, parse_stream_frame(raw, receive_ns))


class BinanceSpot:
    """The Binance spot venue; ``VENUE`` is its one instance."""

    name = "BINANCE"
    market: MarketType = SPOT
    default_channels: tuple[str, ...] = ("trade", "bookTicker")
    contiguous_trade_ids = True

    def symbol(self, text: str) -> str:
        return text.strip().upper()

    def connections(self, ws_base_url: str, channels: Sequence[str]) -> Connections:
        return one_connection(ws_base_url, channels)

    def stream_url(self, ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        return combined_stream_url(ws_base_url, symbols, channels)

    def subscriptions(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        return []

    def parser(self, symbols: Sequence[str]) -> BinanceFrameParser:
        return BinanceFrameParser()

    def trade_history(
        self, rest_base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None
    ) -> BinanceTradeHistory:
        return BinanceTradeHistory(rest_base_url, api_key=api_key, retry=retry)


VENUE = BinanceSpot()
