"""Kraken spot: WebSocket v2 wire types and parser, the v1 parser of the 2021 captures, and the
L2 book proved by Kraken's CRC32 checksum. The venue itself is :mod:`.venue` (``VENUE``)."""

from streaming.venues.kraken.book import KrakenBook, KrakenBooks, checksum_part
from streaming.venues.kraken.parse import KrakenFrameParser
from streaming.venues.kraken.parse_v1 import KrakenV1FrameParser
from streaming.venues.kraken.wire import KrakenParseError, rfc3339_ns

__all__ = [
    "KrakenBook",
    "KrakenBooks",
    "KrakenFrameParser",
    "KrakenParseError",
    "KrakenV1FrameParser",
    "checksum_part",
    "rfc3339_ns",
]
