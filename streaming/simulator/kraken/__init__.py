"""Kraken spot's WebSocket v2 in the simulator, over the same synthetic market as Binance's.

A Kraken pair trades the tape of a synthetic symbol, its US dollar standing for the synthetic
market's tether (Binance's convention): ``BTC/USD`` is the very tape of ``BTCUSDT``, with the same
trade ids, prices, quantities, sides and times, so one market can be compared across venues
(:func:`symbol_of_pair`, :func:`pair_of_symbol`). :class:`KrakenStreams` is the endpoint
(``/kraken/v2``) to mount on an aiohttp application; :mod:`.frames` renders Kraken's messages
and :mod:`.market` publishes the market live.
"""

from streaming.simulator.kraken.frames import Pair, book_checksum, pair_of_symbol, symbol_of_pair
from streaming.simulator.kraken.server import PATH, KrakenStreams

__all__ = [
    "PATH",
    "KrakenStreams",
    "Pair",
    "book_checksum",
    "pair_of_symbol",
    "symbol_of_pair",
]
