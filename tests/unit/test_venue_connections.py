"""How many connections a venue's channels take, and the feeds a sidecar opens for them: Binance
USD-M futures' production host serves each kind of stream on its own route, every other host
(the simulator, a testnet) takes them all on one."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming.ingest.feeds import Endpoints, VenueFeeds
from streaming.venues import VENUES, venue

pytestmark = pytest.mark.venues
FUTURES = "BINANCE_FUTURES:BTCUSDT"


@pytest.mark.parametrize("name", sorted(VENUES))
def test_every_venue_takes_its_channels_on_one_connection_to_an_unrouted_host(name: str) -> None:
    found = venue(name)

    connections = found.connections("ws://127.0.0.1:9100/x", found.default_channels)

    assert connections == [("ws://127.0.0.1:9100/x", tuple(found.default_channels))]


def test_the_futures_production_host_takes_one_connection_per_route_trades_first() -> None:
    futures = venue("binance_futures")

    connections = futures.connections("wss://fstream.binance.com", futures.default_channels)

    assert connections == [
        ("wss://fstream.binance.com/market", ("trade", "markPrice@1s")),
        ("wss://fstream.binance.com/public", ("bookTicker", "depth@0ms")),
    ]
    # A base URL that already names a route is taken as given (and its stream URL checked)
    routed = futures.connections("wss://fstream.binance.com/public", ("bookTicker",))
    assert routed == [("wss://fstream.binance.com/public", ("bookTicker",))]


def test_a_sidecar_opens_a_feed_per_route_the_trades_one_under_the_venues_name(
    tmp_path: Path,
) -> None:
    endpoints = {"BINANCE_FUTURES": Endpoints("wss://fstream.binance.com", "")}

    feeds = VenueFeeds([FUTURES], endpoints, tmp_path)

    assert sorted(feeds.feeds) == ["BINANCE_FUTURES", "BINANCE_FUTURES-public"]
    trades, book = feeds.feeds["BINANCE_FUTURES"], feeds.feeds["BINANCE_FUTURES-public"]
    assert trades.url == (
        "wss://fstream.binance.com/market/stream?streams=btcusdt@trade/btcusdt@markPrice@1s"
    )
    assert book.url == (
        "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker/btcusdt@depth@0ms"
    )
    assert feeds.has_gap(FUTURES) is False


def test_the_simulators_futures_take_one_feed(tmp_path: Path) -> None:
    endpoints = {"BINANCE_FUTURES": Endpoints("ws://127.0.0.1:9100/fapi", "")}

    feeds = VenueFeeds([FUTURES], endpoints, tmp_path)

    assert list(feeds.feeds) == ["BINANCE_FUTURES"]
    assert feeds.feeds["BINANCE_FUTURES"].channels == venue("binance_futures").default_channels
