"""What a venue is to the sidecar: one normalizer per venue, behind one interface.

A venue (``streaming/venues/<name>/``) tells the market feed:

- where its WebSocket is and what to send once connected (:meth:`Venue.stream_url`,
  :meth:`Venue.subscriptions`);
- how its frames become neutral records (:meth:`Venue.parser`, a fresh
  :class:`FrameParser` per connection, since sequence numbers and books live per connection);
- its sequence and gap rules: whether trade ids count up by one per instrument (then the feed
  orders them and fills holes), and when the stream itself has lost its thread (the parser
  raises :class:`Resync`: a sequence gap, a book checksum mismatch), so the feed resubscribes;
- where missed trades can be fetched over REST (:meth:`Venue.trade_history`, None if nowhere).

Records are :mod:`streaming.records`; errors are :mod:`streaming.venues.errors`. The venues are
listed in :mod:`streaming.venues`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streaming.records import MarketRecord, MarketType, Trade
from streaming.venues.retry import RetryPolicy

ParsedFrame = MarketRecord | list[MarketRecord] | None
"""One frame's records: one record, several (a batch of trades, a book's levels), or None for
a frame that carries no market data (a subscription answer, a heartbeat)."""


class Resync(Exception):
    """The stream lost its thread (``cause``: ``sequence_gap``, ``checksum_mismatch``, ...):
    what it sends next cannot be trusted until the feed subscribes again."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


class FrameParser(Protocol):
    """Turns one connection's frames into records, in arrival order."""

    def parse(self, raw: bytes, receive_ns: int) -> ParsedFrame:
        """The frame's records; raises VenueParseError for a frame it cannot read (the feed
        dead-letters it and goes on) and Resync when the stream must be subscribed again."""
        ...


class TradeHistory(Protocol):
    """A venue's REST trades by id, for filling what the stream missed."""

    failures: tuple[type[BaseException], ...]
    """What a failed fetch raises (after the client's own retries); the feed records a gap."""

    async def trades(
        self, symbol: str, first_id: int, last_id: int | None, max_trades: int
    ) -> list[Trade]:
        """Trades ``first_id..last_id`` (None: up to now) oldest first, at most ``max_trades``;
        may fall short, and the feed decides what to do with what is missing."""
        ...

    async def aclose(self) -> None: ...


Connections = list[tuple[str, tuple[str, ...]]]
"""A venue's connections for some channels: (WebSocket base URL, the channels it carries)."""


def one_connection(ws_base_url: str, channels: Sequence[str]) -> Connections:
    """Every channel on one connection to ``ws_base_url`` (most venues' rule)."""
    return [(ws_base_url, tuple(channels))]


class Venue(Protocol):
    """One venue's connection, parsing and history rules (see the module's docstring)."""

    name: str
    """The instrument prefix, upper case: ``BINANCE``, ``COINBASE``."""
    market: MarketType
    default_channels: tuple[str, ...]
    contiguous_trade_ids: bool
    """True when each instrument's trade ids count up by one, so a missing id is a lost trade."""

    def symbol(self, text: str) -> str:
        """``text`` spelled as the venue spells its symbols (``btcusdt`` → ``BTCUSDT``)."""
        ...

    def connections(self, ws_base_url: str, channels: Sequence[str]) -> Connections:
        """The connections ``channels`` take, each a WebSocket base URL and the channels it
        carries: one, except where a host serves each kind of stream on its own route."""
        ...

    def stream_url(self, ws_base_url: str, symbols: Sequence[str], channels: Sequence[str]) -> str:
        """The WebSocket URL to open for ``symbols`` × ``channels``."""
        ...

    def subscriptions(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        """The messages to send, in order, once the connection is open (none for a venue that
        subscribes by URL)."""
        ...

    def parser(self, symbols: Sequence[str]) -> FrameParser:
        """A parser for one new connection to ``symbols``."""
        ...

    def trade_history(
        self, rest_base_url: str, *, api_key: str | None = None, retry: RetryPolicy | None = None
    ) -> TradeHistory | None:
        """REST trades by id for gap fill, or None where the venue serves none."""
        ...
