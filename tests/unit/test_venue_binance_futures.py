"""Binance USD-M futures: frames in Binance's documented futures shapes, the venue's rules, and
the spot parser refusing the same frames.

There is no futures capture in ../shared/data, so the frames are written here from the documented
payloads (the ``@trade`` frame from the shape the exchange sends, including its ``X``).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from streaming.records import PERPETUAL, BookTicker, DepthUpdate, FundingRate, Trade
from streaming.venues.base import Resync
from streaming.venues.binance.client import AsyncBinanceRestClient
from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.history import BinanceTradeHistory, fetch_trades
from streaming.venues.binance.parse import parse_stream_frame, parse_stream_payload
from streaming.venues.binance.venue import VENUE as SPOT_VENUE
from streaming.venues.binance_futures.parse import (
    EVENT_OF_CHANNEL,
    BinanceFuturesFrameParser,
    BinanceFuturesParseError,
    parse_rest_trades,
)
from streaming.venues.binance_futures.venue import (
    FUTURES_TRADES,
    ROUTE_OF_CHANNEL,
    VENUE,
    split_by_route,
)
from streaming.venues.errors import VenueParseError
from streaming.venues.retry import RetryPolicy

pytestmark = pytest.mark.venues

RECEIVE_NS = 1_700_000_000_123_456_789
MS = 1_000_000

# Payloads as in Binance's USD-M futures "WebSocket Market Streams" documentation.
TRADE = {"e": "trade", "E": 1679851564490, "T": 1679851564486, "s": "BTCUSDT", "t": 3493102749,
         "p": "27785.00", "q": "0.014", "X": "MARKET", "m": True}  # fmt: skip
BOOK_TICKER = {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891,
               "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000",
               "A": "40.66000000"}  # fmt: skip
MARK_PRICE = {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
              "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167",
              "T": 1562306400000}  # fmt: skip
DEPTH_UPDATE = {"e": "depthUpdate", "E": 123456789, "T": 123456788, "s": "BTCUSDT", "U": 157,
                "u": 160, "pu": 149, "b": [["0.0024", "10"]],
                "a": [["0.0026", "100"], ["0.0027", "0"]]}  # fmt: skip

EXPECTED: dict[str, Any] = {
    "trade": Trade("BTCUSDT", 3493102749, "27785.00", "0.014", True, 1679851564486 * MS,
                   1679851564490 * MS, RECEIVE_NS, "BINANCE_FUTURES", PERPETUAL),
    "bookTicker": BookTicker("BNBUSDT", 400900217, "25.35190000", "31.21000000", "25.36520000",
                             "40.66000000", RECEIVE_NS, 1568014460893 * MS, "BINANCE_FUTURES",
                             PERPETUAL),
    "markPrice": FundingRate("BTCUSDT", "11794.15000000", "11784.62659091", "0.00038167",
                             1562306400000 * MS, 1562305380000 * MS, RECEIVE_NS,
                             "BINANCE_FUTURES", PERPETUAL),
    "depth": DepthUpdate("BTCUSDT", 157, 160, (("0.0024", "10"),),
                         (("0.0026", "100"), ("0.0027", "0")), 123456789 * MS, RECEIVE_NS,
                         "BINANCE_FUTURES", PERPETUAL),
}  # fmt: skip
PAYLOAD_OF_CHANNEL = {
    "trade": (TRADE, "trade"),
    "bookTicker": (BOOK_TICKER, "bookTicker"),
    "markPrice": (MARK_PRICE, "markPrice"),
    "markPrice@1s": (MARK_PRICE, "markPrice"),
    "depth": (DEPTH_UPDATE, "depth"),
    "depth@0ms": (DEPTH_UPDATE, "depth"),
    "depth@100ms": (DEPTH_UPDATE, "depth"),
    "depth@500ms": (DEPTH_UPDATE, "depth"),
}


def frame(channel: str, data: Any, symbol: str = "btcusdt") -> bytes:
    """A combined-stream frame, compact as Binance sends it."""
    envelope = {"stream": f"{symbol}@{channel}", "data": data}
    return json.dumps(envelope, separators=(",", ":")).encode()


def depth(first: int, final: int, previous: int) -> dict[str, Any]:
    return {**DEPTH_UPDATE, "U": first, "u": final, "pu": previous}


# -- the documented frames --------------------------------------------------------------------
@pytest.mark.parametrize("channel", list(PAYLOAD_OF_CHANNEL))
def test_each_channel_gives_its_documented_record(channel: str) -> None:
    # Arrange
    payload, expected = PAYLOAD_OF_CHANNEL[channel]

    # Act
    record = VENUE.parser(["BTCUSDT"]).parse(frame(channel, payload), RECEIVE_NS)

    # Assert
    assert record == EXPECTED[expected]


def test_the_channel_table_is_the_routing_table() -> None:
    assert set(PAYLOAD_OF_CHANNEL) == set(EVENT_OF_CHANNEL) == set(ROUTE_OF_CHANNEL)
    assert set(VENUE.default_channels) <= set(EVENT_OF_CHANNEL)


def test_a_text_frame_reads_like_its_bytes() -> None:
    text = frame("trade", TRADE).decode()

    record = BinanceFuturesFrameParser().parse(text, RECEIVE_NS)  # type: ignore[arg-type]

    assert record == EXPECTED["trade"]


def test_unknown_fields_such_as_the_cm_migration_ones_are_ignored() -> None:
    # Arrange: fields Binance documents as appended after the COIN-M migration, and the mark
    # price's moving average.
    extra = {"st": 1, "ps": "BTCUSDT", "ap": "11790.1", "zz": [1, {"a": None}]}
    parser = BinanceFuturesFrameParser()

    # Act
    records = [
        parser.parse(frame(channel, {**payload, **extra}), RECEIVE_NS)
        for channel, (payload, _) in PAYLOAD_OF_CHANNEL.items()
        if channel in ("trade", "bookTicker", "markPrice", "depth")
    ]

    # Assert
    assert records == [EXPECTED[k] for k in ("trade", "bookTicker", "markPrice", "depth")]


@pytest.mark.parametrize("execution_type", ["INSURANCE_FUND", "ADL", "NA", "LIQUIDATION"])
def test_a_fill_that_is_not_a_market_trade_gives_no_record_and_is_counted(
    execution_type: str,
) -> None:
    # Arrange
    parser = BinanceFuturesFrameParser()
    fill = frame("trade", {**TRADE, "t": TRADE["t"] + 1, "X": execution_type})

    # Act
    before = parser.parse(frame("trade", TRADE), RECEIVE_NS)
    skipped = parser.parse(fill, RECEIVE_NS)

    # Assert
    assert before == EXPECTED["trade"]
    assert skipped is None
    assert parser.non_market_trades == 1


def test_a_negative_funding_rate_is_kept_and_a_missing_index_price_is_none() -> None:
    payload = {**MARK_PRICE, "r": "-0.00012500"}
    del payload["i"]

    record = BinanceFuturesFrameParser().parse(frame("markPrice@1s", payload), RECEIVE_NS)

    assert isinstance(record, FundingRate)
    assert (record.funding_rate, record.index_price) == ("-0.00012500", None)


def test_a_next_funding_time_of_zero_is_none() -> None:
    payload = {**MARK_PRICE, "T": 0}

    record = BinanceFuturesFrameParser().parse(frame("markPrice", payload), RECEIVE_NS)

    assert isinstance(record, FundingRate) and record.next_funding_ns is None


def test_no_futures_frame_ever_gives_a_spot_record() -> None:
    # Arrange: a deterministic mix of every channel, symbols and documented field values.
    rng = random.Random(20240808)
    parser = BinanceFuturesFrameParser()
    last_u = {"btcusdt": 1000, "ethusdt": 5000}
    frames: list[bytes] = []
    for n in range(2000):
        symbol = rng.choice(("btcusdt", "ethusdt"))
        channel = rng.choice(list(PAYLOAD_OF_CHANNEL))
        payload, _ = PAYLOAD_OF_CHANNEL[channel]
        data = {**payload, "s": symbol.upper(), "E": 1700000000000 + n}
        if channel.startswith("depth"):
            channel = "depth@0ms"  # one depth stream per symbol: one chain each
            first = last_u[symbol] + rng.randint(1, 3)
            data |= {"U": first, "u": first + rng.randint(0, 5), "pu": last_u[symbol]}
            last_u[symbol] = data["u"]
        frames.append(frame(channel, data, symbol))

    # Act
    records: list[Any] = [parser.parse(raw, RECEIVE_NS + i) for i, raw in enumerate(frames)]

    # Assert
    assert None not in records  # every trade here is a market trade
    assert {(r.venue, r.market) for r in records if r is not None} == {
        ("BINANCE_FUTURES", PERPETUAL)
    }
    assert {type(r) for r in records} == {Trade, BookTicker, FundingRate, DepthUpdate}


# -- depth continuity: pu == previous u ---------------------------------------------------------
def test_diffs_chained_by_pu_pass_whatever_their_first_ids() -> None:
    # Arrange: U skips ahead of previous u + 1, as futures diffs do; pu carries the chain.
    parser = BinanceFuturesFrameParser()
    chain = [depth(157, 160, 149), depth(165, 170, 160), depth(171, 171, 170)]

    # Act
    records = [parser.parse(frame("depth@0ms", d), RECEIVE_NS) for d in chain]

    # Assert
    assert [(r.first_update_id, r.final_update_id) for r in records] == [  # type: ignore[union-attr]
        (157, 160), (165, 170), (171, 171),
    ]  # fmt: skip


def test_a_diff_whose_pu_is_not_the_previous_u_raises_a_sequence_gap_and_the_chain_restarts() -> (
    None
):
    # Arrange
    parser = BinanceFuturesFrameParser()
    parser.parse(frame("depth@100ms", depth(157, 160, 149)), RECEIVE_NS)

    # Act
    with pytest.raises(Resync) as gap:
        parser.parse(frame("depth@100ms", depth(171, 175, 170)), RECEIVE_NS)
    restarted = parser.parse(frame("depth@100ms", depth(176, 180, 175)), RECEIVE_NS)

    # Assert
    assert gap.value.cause == "sequence_gap"
    assert "pu 170" in gap.value.detail and "previous u was 160" in gap.value.detail
    assert isinstance(restarted, DepthUpdate) and restarted.final_update_id == 180


def test_spot_style_continuity_is_not_accepted_in_place_of_pu() -> None:
    # Arrange: U == previous u + 1 (spot's rule) but pu does not name the previous u.
    parser = BinanceFuturesFrameParser()
    parser.parse(frame("depth", depth(157, 160, 149)), RECEIVE_NS)

    # Act / Assert
    with pytest.raises(Resync, match="sequence_gap"):
        parser.parse(frame("depth", depth(161, 165, 158)), RECEIVE_NS)


def test_each_depth_stream_keeps_its_own_chain_and_each_connection_starts_afresh() -> None:
    # Arrange
    first = BinanceFuturesFrameParser()

    # Act: two symbols and two speeds interleaved, each chained on its own.
    first.parse(frame("depth@0ms", depth(10, 20, 5)), RECEIVE_NS)
    first.parse(frame("depth@0ms", {**depth(100, 200, 50), "s": "ETHUSDT"}, "ethusdt"), RECEIVE_NS)
    first.parse(frame("depth@500ms", depth(1, 30, 0)), RECEIVE_NS)
    first.parse(frame("depth@0ms", depth(21, 25, 20)), RECEIVE_NS)
    first.parse(frame("depth@0ms", {**depth(201, 210, 200), "s": "ETHUSDT"}, "ethusdt"), RECEIVE_NS)
    first.parse(frame("depth@500ms", depth(31, 40, 30)), RECEIVE_NS)
    fresh = VENUE.parser(["BTCUSDT"]).parse(frame("depth@0ms", depth(900, 901, 899)), RECEIVE_NS)

    # Assert
    assert isinstance(fresh, DepthUpdate) and fresh.first_update_id == 900


def test_a_dead_lettered_diff_breaks_the_chain_at_the_next_one() -> None:
    # Arrange
    parser = BinanceFuturesFrameParser()
    parser.parse(frame("depth", depth(157, 160, 149)), RECEIVE_NS)
    bad = {**depth(161, 165, 160), "b": [["0.0024", "ten"]]}

    # Act
    with pytest.raises(BinanceFuturesParseError):
        parser.parse(frame("depth", bad), RECEIVE_NS)

    # Assert: the diff after the lost one does not chain to what the parser last accepted.
    with pytest.raises(Resync):
        parser.parse(frame("depth", depth(166, 170, 165)), RECEIVE_NS)


# -- malformed frames name their field ----------------------------------------------------------
MALFORMED = [
    ("trade", {**TRADE, "p": "27785,00"}, "invalid field", "data.p"),
    ("trade", {**TRADE, "q": "-0.014"}, "invalid field", "data.q"),
    ("trade", {k: v for k, v in TRADE.items() if k != "X"}, "missing field", "data.X"),
    ("trade", {**TRADE, "t": "3493102749"}, "invalid field", "data.t"),
    ("trade", {**TRADE, "E": -1}, "invalid field", "data.E"),
    ("trade", {k: v for k, v in TRADE.items() if k != "e"}, "missing field", "data.e"),
    ("bookTicker", {**BOOK_TICKER, "A": "40.66 "}, "invalid field", "data.A"),
    ("bookTicker", {k: v for k, v in BOOK_TICKER.items() if k != "T"}, "missing field", "data.T"),
    ("markPrice@1s", {**MARK_PRICE, "r": ""}, "invalid field", "data.r"),
    ("markPrice@1s", {**MARK_PRICE, "i": ".5"}, "invalid field", "data.i"),
    ("markPrice", {**MARK_PRICE, "p": 11794.15}, "invalid field", "data.p"),
    ("depth@0ms", {k: v for k, v in DEPTH_UPDATE.items() if k != "pu"}, "missing field", "data.pu"),
    ("depth@0ms", {**DEPTH_UPDATE, "a": [["0.0026", "1e2"]]}, "invalid field", "data.a[0][1]"),
    ("depth@0ms", {**DEPTH_UPDATE, "b": [["0.0024"]]}, "invalid field", "data.b[0]"),
    ("trade", {**BOOK_TICKER}, "invalid field", "data.e"),
    ("trade", {**TRADE, "e": "aggTrade"}, "invalid field", "data.e"),
    ("aggTrade", {**TRADE, "e": "aggTrade"}, "unsupported stream", "stream"),
    ("depth@250ms", DEPTH_UPDATE, "unsupported stream", "stream"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "data", "kind", "field"), MALFORMED)
def test_a_malformed_frame_raises_naming_the_field(
    channel: str, data: dict[str, Any], kind: str, field: str
) -> None:
    # Arrange
    raw = frame(channel, data)

    # Act
    with pytest.raises(BinanceFuturesParseError) as error:
        BinanceFuturesFrameParser().parse(raw, RECEIVE_NS)

    # Assert
    assert (error.value.kind, error.value.field) == (kind, field)
    assert error.value.raw == raw
    assert isinstance(error.value, BinanceParseError) and isinstance(error.value, VenueParseError)


@pytest.mark.parametrize(
    ("raw", "kind", "field"),
    [
        (frame("trade", TRADE)[:-1], "malformed json", None),
        (b'{"data":' + json.dumps(TRADE).encode() + b"}", "missing field", "stream"),
        (b"[]", "invalid field", None),
    ],
)
def test_a_broken_envelope_raises_naming_what_is_wrong(
    raw: bytes, kind: str, field: str | None
) -> None:
    with pytest.raises(BinanceFuturesParseError) as error:
        BinanceFuturesFrameParser().parse(raw, RECEIVE_NS)

    assert (error.value.kind, error.value.field) == (kind, field)


# -- the spot parser refuses futures frames -----------------------------------------------------
def without(payload: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in names}


# (channel, the spot frame's shape of the same data, the futures frame, the field refused)
FUTURES_FOR_SPOT = [
    ("trade", without(TRADE, "X") | {"M": True}, TRADE, "data.X"),
    ("bookTicker", without(BOOK_TICKER, "e", "E", "T"), BOOK_TICKER, "data.T"),
    ("depth@100ms", without(DEPTH_UPDATE, "T", "pu"), DEPTH_UPDATE, "data.pu"),
    ("depth", without(DEPTH_UPDATE, "T", "pu"), DEPTH_UPDATE, "data.pu"),
]


@pytest.mark.parametrize(("channel", "spot_data", "data", "field"), FUTURES_FOR_SPOT)
def test_the_spot_parser_refuses_a_futures_frame_naming_its_field(
    channel: str, spot_data: dict[str, Any], data: dict[str, Any], field: str
) -> None:
    # Arrange: the spot shape first, so that the stream takes spot's fast way too.
    spot = SPOT_VENUE.parser(["BTCUSDT"])
    learned = spot.parse(frame(channel, spot_data), RECEIVE_NS)
    raw = frame(channel, data)

    # Act
    errors: list[BinanceParseError] = []
    for parse in (spot.parse, parse_stream_frame):
        with pytest.raises(BinanceParseError) as error:
            parse(raw, RECEIVE_NS)
        errors.append(error.value)

    # Assert
    assert getattr(learned, "market", None) == "spot"
    assert [(e.kind, e.field) for e in errors] == [("invalid field", field)] * 2
    assert all("USD-M futures" in e.reason and e.raw == raw for e in errors)


@pytest.mark.parametrize("channel", ["markPrice", "markPrice@1s"])
def test_the_spot_parser_refuses_a_mark_price_frame(channel: str) -> None:
    raw = frame(channel, MARK_PRICE)

    with pytest.raises(BinanceParseError) as by_frame:
        SPOT_VENUE.parser(["BTCUSDT"]).parse(raw, RECEIVE_NS)
    with pytest.raises(BinanceParseError) as by_payload:
        parse_stream_payload(f"btcusdt@{channel}", json.dumps(MARK_PRICE).encode(), RECEIVE_NS)

    assert (by_frame.value.kind, by_frame.value.field) == ("unsupported stream", "stream")
    assert by_payload.value.kind == "unsupported stream"


def test_the_spot_parser_refuses_mark_price_data_under_a_spot_stream_name() -> None:
    for channel in ("trade", "bookTicker", "depth@100ms"):
        with pytest.raises(BinanceParseError) as error:
            parse_stream_frame(frame(channel, MARK_PRICE), RECEIVE_NS)
        assert error.value.field in ("data.e", "data.u")


# -- the venue ------------------------------------------------------------------------------
def test_the_venue_is_binance_usdm_perpetuals_subscribed_by_url() -> None:
    assert (VENUE.name, VENUE.market) == ("BINANCE_FUTURES", "perpetual")
    assert VENUE.default_channels == ("trade", "bookTicker", "markPrice@1s", "depth@0ms")
    assert VENUE.contiguous_trade_ids is False
    assert VENUE.subscriptions(["BTCUSDT"], VENUE.default_channels) == []
    assert VENUE.symbol(" btcusdt ") == "BTCUSDT"
    assert VENUE.parser(["BTCUSDT"]) is not VENUE.parser(["BTCUSDT"])


@pytest.mark.parametrize("text", ["BTCUSDT_250328", "", "  "])
def test_a_symbol_that_is_not_a_perpetual_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="perpetual"):
        VENUE.symbol(text)


def test_stream_url_combines_every_symbol_and_channel() -> None:
    url = VENUE.stream_url("wss://stream.binancefuture.com/", ["BTCUSDT", "ETHUSDT"],
                           VENUE.default_channels)  # fmt: skip

    assert url == (
        "wss://stream.binancefuture.com/stream?streams=btcusdt@trade/btcusdt@bookTicker/"
        "btcusdt@markPrice@1s/btcusdt@depth@0ms/ethusdt@trade/ethusdt@bookTicker/"
        "ethusdt@markPrice@1s/ethusdt@depth@0ms"
    )


def test_the_default_channels_split_into_the_two_routes_of_the_production_host() -> None:
    # Act
    routes = split_by_route(VENUE.default_channels)
    urls = {
        route: VENUE.stream_url(f"wss://fstream.binance.com/{route}", ["BTCUSDT"], channels)
        for route, channels in routes.items()
    }

    # Assert
    assert routes == {"market": ("trade", "markPrice@1s"), "public": ("bookTicker", "depth@0ms")}
    assert urls["public"] == (
        "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker/btcusdt@depth@0ms"
    )


def test_a_channel_the_route_does_not_serve_or_the_parser_does_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match="markPrice@1s are served on /market"):
        VENUE.stream_url("wss://fstream.binance.com/public", ["BTCUSDT"], VENUE.default_channels)
    with pytest.raises(ValueError, match="reads no channel aggTrade"):
        VENUE.stream_url("wss://fstream.binance.com/market", ["BTCUSDT"], ["aggTrade"])


def test_trade_history_needs_an_api_key() -> None:
    assert VENUE.trade_history("https://fapi.binance.com") is None
    assert VENUE.trade_history("https://fapi.binance.com", api_key="") is None


# -- REST trades by id over a local server answering in the documented shape ----------------
# Ids 100..139 where 105, 111 and 112 were fills of the insurance fund / ADL, not served by REST.
SERVED_IDS = [i for i in range(100, 140) if i not in (105, 111, 112)]


class _HistoricalTrades(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, dict[str, str], str | None]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).requests.append((url.path, query, self.headers.get("X-MBX-APIKEY")))
        start, limit = int(query["fromId"]), int(query["limit"])
        rows = [
            {"id": i, "price": f"{27000 + i}.10", "qty": "0.003", "quoteQty": "81.30",
             "time": 1679851564000 + i, "isBuyerMaker": i % 2 == 0}
            for i in SERVED_IDS if i >= start
        ][:limit]  # fmt: skip
        body = json.dumps(rows).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def rest_url() -> Iterator[str]:
    _HistoricalTrades.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HistoricalTrades)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_trade_history_fetches_a_range_across_holes_with_the_api_key(rest_url: str) -> None:
    # Arrange
    history = VENUE.trade_history(rest_url, api_key="key-1", retry=RetryPolicy(max_attempts=1))
    assert isinstance(history, BinanceTradeHistory) and history.endpoint is FUTURES_TRADES

    async def fetch() -> list[Trade]:
        try:
            return await history.trades("BTCUSDT", 104, 113, 1000)
        finally:
            await history.aclose()

    # Act
    trades = asyncio.run(fetch())

    # Assert
    assert [t.trade_id for t in trades] == [104, 106, 107, 108, 109, 110, 113]
    assert {(t.venue, t.market, t.symbol) for t in trades} == {
        ("BINANCE_FUTURES", PERPETUAL, "BTCUSDT")
    }
    assert trades[0].price == "27104.10" and trades[0].trade_ns == 1679851564104 * MS
    path, query, key = _HistoricalTrades.requests[0]
    assert (path, query["symbol"], query["fromId"], key) == (
        "/fapi/v1/historicalTrades", "BTCUSDT", "104", "key-1",
    )  # fmt: skip


def test_fetch_trades_pages_from_the_id_after_the_last_received_until_caught_up(
    rest_url: str,
) -> None:
    async def fetch() -> list[Trade]:
        async with AsyncBinanceRestClient(rest_url, api_key="k") as rest:
            return await fetch_trades(
                rest, "BTCUSDT", 100, None, page_limit=4, endpoint=FUTURES_TRADES
            )

    trades = asyncio.run(fetch())

    # Pages of 4: 100-103, then 104 106 107 108 (105 is a hole), then 109 110 113 114, ...
    assert [t.trade_id for t in trades] == SERVED_IDS
    asked_from = [query["fromId"] for _, query, _ in _HistoricalTrades.requests]
    assert asked_from[:4] == ["100", "104", "109", "115"]


def test_rest_trades_of_another_shape_raise_naming_the_field() -> None:
    with pytest.raises(BinanceFuturesParseError) as error:
        parse_rest_trades(b'[{"id": 1, "price": "1.0", "qty": "x", "quoteQty": "1", '
                          b'"time": 1, "isBuyerMaker": true}]', "BTCUSDT", RECEIVE_NS)  # fmt: skip

    assert (error.value.kind, error.value.field) == ("invalid field", "[0].qty")
