"""The market feeds of a sidecar: one :class:`MarketFeed` per venue of its instruments (per
connection, where a venue's host serves each kind of stream on its own route).

    feeds = VenueFeeds(["BINANCE:BTCUSDT", "COINBASE:BTC-USD"], endpoints, data_root, ...)
    async with feeds:
        await asyncio.gather(*(consume(feed) for feed in feeds.feeds.values()))

Everything outside the feeds speaks instrument ids (``BINANCE:BTCUSDT``); each feed speaks its
venue's symbols. This is where the two meet: resume points and run starts are translated here,
and :meth:`VenueFeeds.has_gap` answers for an instrument.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streaming.ingest.feed import MarketFeed
from streaming.venues import venue_of
from streaming.venues.base import Venue
from trading_assets.lib.instruments import instrument_id

RunStarts = Callable[[Mapping[str, int]], Awaitable[None]]
"""Told each instrument's first trade id of the run before any of its trades is handed out."""


@dataclass(frozen=True)
class Endpoints:
    """Where one venue is: its WebSocket base URL and its REST base URL."""

    ws_base_url: str
    rest_base_url: str


def by_venue(instruments: Sequence[str]) -> dict[str, tuple[Venue, list[str]]]:
    """The instruments grouped by venue name, each venue with its symbols in the given order."""
    groups: dict[str, tuple[Venue, list[str]]] = {}
    for instrument in instruments:
        venue, symbol = venue_of(instrument)
        groups.setdefault(venue.name, (venue, []))[1].append(symbol)
    return groups


def dead_letter_path(data_root: Path, venue: str) -> Path:
    """Where a venue's unreadable frames are kept (Binance's in ``dead_letters.jsonl``, as
    before venues; another venue's in ``dead_letters.<venue>.jsonl``)."""
    suffix = "" if venue == "BINANCE" else f".{venue.lower()}"
    return data_root / f"dead_letters{suffix}.jsonl"


class VenueFeeds:
    """One market feed per venue, made from instrument ids (see the module)."""

    def __init__(
        self,
        instruments: Sequence[str],
        endpoints: Mapping[str, Endpoints],
        data_root: Path,
        *,
        resume_from: Mapping[str, int] | None = None,
        watchdog_s: float = 30.0,
        on_run_start: RunStarts | None = None,
        extra_channels: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``extra_channels``: per venue name, channels subscribed beside its defaults."""
        resume = dict(resume_from or {})
        extra = extra_channels or {}
        self.feeds: dict[str, MarketFeed] = {}
        for name, (venue, symbols) in by_venue(instruments).items():
            where = endpoints.get(name)
            if where is None:
                raise ValueError(f"no endpoints configured for {name}")
            # The first connection carries the trades (a venue with several lists its trade
            # channel first), so it is the venue's feed: resume points, run starts and gaps are
            # its alone.
            channels = (*venue.default_channels, *extra.get(name, ()))
            connections = venue.connections(where.ws_base_url, channels)
            for index, (url, carried) in enumerate(connections):
                key = name if index == 0 else f"{name}-{url.rstrip('/').rpartition('/')[2]}"
                main = index == 0
                self.feeds[key] = MarketFeed(
                    url,
                    where.rest_base_url,
                    symbols,
                    venue=venue,
                    channels=carried,
                    dead_letter_path=dead_letter_path(data_root, key),
                    resume_from={
                        s: resume[i]
                        for s in symbols
                        if main and (i := instrument_id(name, s)) in resume
                    },
                    watchdog_s=watchdog_s,
                    on_run_start=(
                        None if on_run_start is None or not main else _announcer(name, on_run_start)
                    ),
                )

    def has_gap(self, instrument: str) -> bool:
        """True while the instrument's trades are held back behind a missing id."""
        name, _, symbol = instrument.partition(":")
        feed = self.feeds.get(name)
        return feed is not None and feed.has_gap(symbol)

    async def aclose(self) -> None:
        for feed in self.feeds.values():
            await feed.aclose()


def _announcer(
    venue: str, on_run_start: RunStarts
) -> Callable[[Mapping[str, int]], Awaitable[None]]:
    async def announce(starts: Mapping[str, int]) -> None:
        await on_run_start({instrument_id(venue, s): first for s, first in starts.items()})

    return announce
