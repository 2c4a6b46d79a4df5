"""Binance USD-M futures' WebSocket protocol over the synthetic market, each symbol a perpetual.

:class:`FuturesStreams` is mounted on an aiohttp application beside the spot simulator's routes;
:mod:`.live` publishes the perpetual's streams, :mod:`.funding` models its mark price, index
price and funding rate, :mod:`.payloads` renders the frames.
"""

from streaming.simulator.binance_futures.funding import MarkPrice, PerpetualModel, funding_rate
from streaming.simulator.binance_futures.live import FuturesLiveFeed
from streaming.simulator.binance_futures.streams import DEFAULT_PREFIX, FuturesStreams

__all__ = [
    "DEFAULT_PREFIX",
    "FuturesLiveFeed",
    "FuturesStreams",
    "MarkPrice",
    "PerpetualModel",
    "funding_rate",
]
