"""The venue seam: the list of venues, instrument ids, and neutral records that keep what
was landed before venues existed readable as what it was (Binance spot)."""

from __future__ import annotations

import inspect

import msgspec
import pytest

from streaming.records import PERPETUAL, SPOT, BookTicker, Trade, instrument_id
from streaming.venues import VENUES, UnknownVenueError, venue, venue_of
from streaming.venues.base import Venue

pytestmark = pytest.mark.venues

# A trade line as the landing wrote it before records named their venue.
LEGACY_LINE = (
    b'{"symbol":"BTCUSDT","trade_id":3735683259,"price":"61837.63000000",'
    b'"quantity":"0.02000000","is_buyer_maker":true,"trade_ns":1723161255342000000,'
    b'"event_ns":1723161255343000000,"receive_ns":1723161255350000123}'
)


def test_a_line_landed_before_venues_reads_as_binance_spot_and_binance_lines_keep_their_bytes() -> (
    None
):
    # Act
    trade = msgspec.json.decode(LEGACY_LINE, type=Trade)

    # Assert
    assert (trade.venue, trade.market, trade.instrument) == ("BINANCE", SPOT, "BINANCE:BTCUSDT")
    assert msgspec.json.encode(trade) == LEGACY_LINE


def test_another_venues_records_carry_their_venue_and_market_through_a_line() -> None:
    # Arrange
    trade = Trade("BTCUSDT", 7, "1.5", "2", False, 10, 11, 12, "BINANCE_FUTURES", PERPETUAL)
    ticker = BookTicker("BTC-USD", 9, "1.0", "2.0", "1.1", "3.0", 5, venue="COINBASE")

    # Act
    trade_line, ticker_line = msgspec.json.encode(trade), msgspec.json.encode(ticker)

    # Assert
    assert b'"venue":"BINANCE_FUTURES","market":"perpetual"' in trade_line
    assert msgspec.json.decode(trade_line, type=Trade) == trade
    assert msgspec.json.decode(ticker_line, type=BookTicker).instrument == "COINBASE:BTC-USD"


def test_a_line_naming_an_unknown_market_is_refused() -> None:
    line = LEGACY_LINE[:-1] + b',"market":"options"}'

    with pytest.raises(msgspec.ValidationError, match="market"):
        msgspec.json.decode(line, type=Trade)


@pytest.mark.parametrize("name", sorted(VENUES))
def test_every_listed_venue_has_the_whole_interface(name: str) -> None:
    # Act
    found = venue(name)

    # Assert
    members = {n for n, _ in inspect.getmembers(Venue) if not n.startswith("_")}
    members |= set(Venue.__annotations__)
    assert {m for m in members if not hasattr(found, m)} == set()
    assert found.name == found.name.upper() and found.name.lower() == name
    assert found.market in (SPOT, PERPETUAL)
    assert found.default_channels
    assert venue_of(instrument_id(found.name, "x"))[0] is found


def test_an_unknown_venue_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(UnknownVenueError, match="unknown venue 'nasdaq': the venues are binance"):
        venue("nasdaq")
    with pytest.raises(UnknownVenueError, match="not an instrument id"):
        venue_of("BTCUSDT")


def test_an_instrument_id_gives_its_venue_and_the_symbol_as_the_venue_spells_it() -> None:
    found, symbol = venue_of("binance:btcusdt")

    assert (found.name, symbol) == ("BINANCE", "BTCUSDT")
