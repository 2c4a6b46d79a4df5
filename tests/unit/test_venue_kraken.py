"""Kraken spot: the whole 2021 v1 recording parses with every book checksum verified, and the
same data re-expressed in WebSocket v2's documented shape parses to the same records.

The reference here is the test's own: frames are classified and their values read with
``json``, and the book checksums are computed by :func:`documented_checksum` over
:class:`ReferenceBook` (Kraken's documented algorithm, written out again), which must give
Kraken's own ``c`` for every update of the recording before anything is compared with it.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import random
import zlib
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from streaming.recordings import RecordedFrame, read_recording
from streaming.records import BookTicker, DepthSnapshot, DepthUpdate, Trade
from streaming.venues.base import Resync
from streaming.venues.kraken import KrakenFrameParser, KrakenParseError, KrakenV1FrameParser
from streaming.venues.kraken.venue import KRAKEN_V1, VENUE
from streaming.venues.kraken.wire import rfc3339_ns

pytestmark = pytest.mark.venues

RECORDING = "kraken/cryptofeed_kraken_20210417.jsonl.gz"
README_FRAMES = {"book": 4_279, "ticker": 18, "trade": 8}  # the data README's counts
V1_DEPTH = 1000  # the recording's channel is book-1000
ASSET_NAMES = {"XBT": "BTC", "XDG": "DOGE"}  # v1 names of assets v2 calls otherwise


# -- the test's own reading of the recording ----------------------------------------------------


def kind_of(message: Any) -> str:
    """``book``/``ticker``/``trade`` for a channel frame, the event's name for an event."""
    return message["event"] if isinstance(message, dict) else message[-2].split("-")[0]


def symbol_of(pair: str) -> str:
    return "/".join(ASSET_NAMES.get(asset, asset) for asset in pair.split("/"))


def ns_of(seconds: str) -> int:
    return int(Decimal(seconds) * 10**9)


def documented_checksum(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's book checksum as its docs tell it: the 10 best asks low to high, then the 10 best
    bids high to low, each price and quantity without its point and leading zeros; CRC32."""

    def digits(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    text = "".join(digits(price) + digits(qty) for price, qty in [*asks[:10], *bids[:10]])
    return zlib.crc32(text.encode())


class ReferenceBook:
    """A plain book: levels by exact price, cut to the depth after each message."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.asks: dict[Decimal, tuple[str, str]] = {}
        self.bids: dict[Decimal, tuple[str, str]] = {}

    def apply(self, asks: list[Any], bids: list[Any]) -> None:
        for side, levels in ((self.asks, asks), (self.bids, bids)):
            for price, qty, *_ in levels:
                if Decimal(qty) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, qty)
        for side, best in ((self.asks, heapq.nsmallest), (self.bids, heapq.nlargest)):
            if len(side) > self.depth:
                kept = set(best(self.depth, side))
                for price in [p for p in side if p not in kept]:
                    del side[price]

    def top(self, count: int | None = 10) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        asks = sorted(self.asks) if count is None else heapq.nsmallest(count, self.asks)
        bids = (
            sorted(self.bids, reverse=True) if count is None else heapq.nlargest(count, self.bids)
        )
        return [self.asks[p] for p in asks], [self.bids[p] for p in bids]

    def checksum(self) -> int:
        return documented_checksum(*self.top())


@pytest.fixture(scope="module")
def frames(shared_data) -> list[RecordedFrame]:
    path = shared_data / RECORDING
    if not path.is_file():
        pytest.skip(f"the Kraken recording is absent ({path})")
    return [frame for frame in read_recording(path) if not frame.is_rest]


@pytest.fixture(scope="module")
def messages(frames) -> list[Any]:
    return [json.loads(frame.payload) for frame in frames]


@pytest.fixture(scope="module")
def v1_parsed(frames) -> list[Any]:
    """What one v1 parser gives for each frame, in order (any Resync fails the fixture)."""
    parser = KrakenV1FrameParser()
    return [parser.parse(frame.payload, frame.receive_ns) for frame in frames]


def as_list(parsed: Any) -> list[Any]:
    return [] if parsed is None else parsed if isinstance(parsed, list) else [parsed]


# -- the v1 recording ---------------------------------------------------------------------------


def test_the_recording_holds_what_its_readme_says(messages):
    kinds = Counter(kind_of(message) for message in messages)
    assert {kind: kinds[kind] for kind in README_FRAMES} == README_FRAMES
    assert kinds["heartbeat"] > 0 and kinds["systemStatus"] > 0


def test_every_frame_gives_the_records_of_its_channel(messages, v1_parsed):
    expected: Counter[str] = Counter()
    got: Counter[str] = Counter()
    for message, parsed in zip(messages, v1_parsed, strict=True):
        kind = kind_of(message)
        if kind == "book":
            expected["DepthSnapshot" if "as" in message[1] else "DepthUpdate"] += 1
        elif kind == "ticker":
            expected["BookTicker"] += 1
        elif kind == "trade":
            expected["Trade"] += len(message[1])
        else:
            expected["None"] += 1
        got.update(type(record).__name__ for record in as_list(parsed))
        got["None"] += parsed is None
    assert got == expected
    assert expected["DepthSnapshot"] == 10  # one per pair
    assert expected["DepthUpdate"] == README_FRAMES["book"] - 10


def test_prices_quantities_and_times_are_as_sent(frames, messages, v1_parsed):
    for frame, message, parsed in zip(frames, messages, v1_parsed, strict=True):
        records = as_list(parsed)
        if not records:
            continue
        assert all(r.receive_ns == frame.receive_ns and r.venue == "KRAKEN" for r in records)
        assert all(r.symbol == symbol_of(message[-1]) for r in records)
        kind, body = kind_of(message), message[1]
        if kind == "trade":
            assert [(t.price, t.quantity, t.trade_ns, t.is_buyer_maker) for t in records] == [
                (row[0], row[1], ns_of(row[2]), row[3] == "s") for row in body
            ]
        elif kind == "ticker":
            (ticker,) = records
            assert (ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty) == (
                body["b"][0],
                body["b"][2],
                body["a"][0],
                body["a"][2],
            )
            assert ticker.event_ns is None
        elif "as" in body:
            (snapshot,) = records
            assert snapshot.asks == tuple((p, q) for p, q, _ in body["as"])
            assert snapshot.bids == tuple((p, q) for p, q, _ in body["bs"])
        else:
            (update,) = records
            bodies = message[1:-2]
            asks = [level for b in bodies for level in b.get("a", [])]
            bids = [level for b in bodies for level in b.get("b", [])]
            assert update.asks == tuple((level[0], level[1]) for level in asks)
            assert update.bids == tuple((level[0], level[1]) for level in bids)
            assert update.event_ns == max(ns_of(level[2]) for level in asks + bids)
            assert update.checksum == int(bodies[-1]["c"])


def test_every_checksum_verifies_and_the_books_end_as_kraken_has_them(frames, messages):
    parser = KrakenV1FrameParser()
    books: dict[str, ReferenceBook] = {}
    verified = 0
    for frame, message in zip(frames, messages, strict=True):
        parser.parse(frame.payload, frame.receive_ns)  # a mismatch raises Resync
        if kind_of(message) != "book":
            continue
        symbol, body = symbol_of(message[-1]), message[1]
        if "as" in body:
            books[symbol] = ReferenceBook(V1_DEPTH)
            books[symbol].apply(body["as"], body["bs"])
            continue
        bodies = message[1:-2]
        books[symbol].apply(
            [lv for b in bodies for lv in b.get("a", [])],
            [lv for b in bodies for lv in b.get("b", [])],
        )
        # The documented algorithm over the test's own book gives Kraken's value every time.
        assert books[symbol].checksum() == int(bodies[-1]["c"])
        verified += 1
    assert verified == README_FRAMES["book"] - 10
    for symbol, reference in books.items():
        book = parser.books.get(symbol)
        assert book is not None
        assert (book.asks(), book.bids()) == reference.top(None)


def test_the_book_is_never_crossed_and_its_updates_chain(frames):
    parser = KrakenV1FrameParser()
    last_ids: dict[str, int] = {}
    books_checked = 0
    for frame in frames:
        parsed = parser.parse(frame.payload, frame.receive_ns)
        if isinstance(parsed, DepthSnapshot):
            assert parsed.last_update_id == 1
            last_ids[parsed.symbol] = 1
        elif isinstance(parsed, DepthUpdate):
            assert parsed.first_update_id == parsed.final_update_id == last_ids[parsed.symbol] + 1
            last_ids[parsed.symbol] = parsed.final_update_id
        else:
            continue
        book = parser.books.get(parsed.symbol)
        assert book is not None and not book.is_crossed()
        best_bid, best_ask = book.best_bid(), book.best_ask()
        assert best_bid is not None and best_ask is not None
        assert Decimal(best_bid[0]) < Decimal(best_ask[0])
        books_checked += 1
    assert books_checked == README_FRAMES["book"]


def test_a_tampered_level_raises_resync_naming_the_symbol(frames, messages):
    # The first update whose checksum differs from its pair's previous one: it moved the top 10.
    previous: dict[str, str] = {}
    index, message = 0, messages[0]
    for index, message in enumerate(messages):  # noqa: B007 - the loop's last values are used
        if kind_of(message) == "book" and "c" in message[-3]:
            pair, checksum = message[-1], message[-3]["c"]
            if pair in previous and previous[pair] != checksum:
                break
            previous[pair] = checksum
    side = "a" if "a" in message[1] else "b"
    qty = message[1][side][0][1]
    tampered_qty = qty[:-1] + str((int(qty[-1]) + 1) % 10)
    tampered = frames[index].payload.replace(f'"{qty}"'.encode(), f'"{tampered_qty}"'.encode(), 1)
    assert tampered != frames[index].payload

    parser = KrakenV1FrameParser()
    for frame in frames[:index]:
        parser.parse(frame.payload, frame.receive_ns)
    with pytest.raises(Resync) as caught:
        parser.parse(tampered, frames[index].receive_ns)
    symbol = symbol_of(message[-1])
    assert caught.value.cause == "checksum_mismatch"
    assert symbol in caught.value.detail
    # The book is gone: its next update cannot be trusted either.
    following = next(
        i
        for i in range(index + 1, len(messages))
        if kind_of(messages[i]) == "book" and messages[i][-1] == message[-1]
    )
    with pytest.raises(Resync) as again:
        parser.parse(frames[following].payload, frames[following].receive_ns)
    assert again.value.cause == "book_without_snapshot" and symbol in again.value.detail


def test_trades_are_counted_per_pair_and_tickers_only_grow(messages, v1_parsed):
    trade_ids: dict[str, list[int]] = defaultdict(list)
    ticker_ids: dict[str, list[int]] = defaultdict(list)
    for parsed in v1_parsed:
        for record in as_list(parsed):
            if isinstance(record, Trade):
                trade_ids[record.symbol].append(record.trade_id)
            elif isinstance(record, BookTicker):
                assert record.update_id >= record.receive_ns
                ticker_ids[record.symbol].append(record.update_id)
    rows = sum(len(m[1]) for m in messages if kind_of(m) == "trade")
    assert sum(map(len, trade_ids.values())) == rows
    assert all(ids == list(range(1, len(ids) + 1)) for ids in trade_ids.values())
    assert all(ids == sorted(set(ids)) for ids in ticker_ids.values())
    assert not KRAKEN_V1.contiguous_trade_ids


V1_UPDATE = b'[992,{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},"book-1000","XMR/USD"]'  # noqa: E501
V1_TRADE = b'[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]'
V1_TICKER = b'[996,{"a":["355.24000000",27,"27.19106411"],"b":["354.32000000",6,"6.87748868"]},"ticker","XMR/USD"]'  # noqa: E501


@pytest.mark.parametrize(
    ("frame", "kind", "field"),
    [
        (V1_UPDATE.replace(b'"354.15000000"', b'"354.1x"'), "invalid field", "[1].b[0][0]"),
        (V1_UPDATE.replace(b'"5.00000000"', b'"-5"'), "invalid field", "[1].b[0][1]"),
        (V1_UPDATE.replace(b'"1618678133.365913"', b'"soon"'), "invalid field", "[1].b[0][2]"),
        (V1_UPDATE.replace(b'"5.00000000",', b""), "invalid field", "[1].b[0]"),
        (V1_UPDATE.replace(b',"c":"2583817756"', b""), "missing field", "[1].c"),
        (V1_UPDATE.replace(b'"2583817756"', b'"99999999999"'), "invalid field", "[1].c"),
        (V1_UPDATE.replace(b'"book-1000"', b'"spread"'), "unsupported stream", "[2]"),
        (V1_UPDATE.replace(b'"XMR/USD"', b"7"), "invalid field", "[3]"),
        (V1_TRADE.replace(b'"354.11000000"', b'"1e3"'), "invalid field", "[1][0][0]"),
        (V1_TRADE.replace(b'"1618678142.557535"', b'"x"'), "invalid field", "[1][0][2]"),
        (V1_TRADE.replace(b'"s"', b'"x"'), "invalid field", "[1][0][3]"),
        (V1_TICKER.replace(b'"6.87748868"', b'""'), "invalid field", "[1].b[2]"),
        (V1_TICKER.replace(b',"b":["354.32000000",6,"6.87748868"]', b""), "missing field", "[1].b"),
        (V1_TRADE[:40], "malformed json", None),
        (
            b'{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not '
            b'in ISO 4217-A3 format","pair":"XBTUSD"}',
            "unsupported stream",
            "errorMessage",
        ),
    ],
)
def test_a_malformed_v1_frame_names_its_field(frame: bytes, kind: str, field: str | None):
    parser = KrakenV1FrameParser()
    with pytest.raises(KrakenParseError) as caught:
        parser.parse(frame, 1)
    assert (caught.value.kind, caught.value.field) == (kind, field)
    assert caught.value.raw == frame


# -- the same data as WebSocket v2 frames -------------------------------------------------------


def rfc3339(seconds: str) -> str:
    """Epoch seconds as RFC3339 with the same fraction digits."""
    whole, _, fraction = seconds.partition(".")
    stamp = dt.datetime.fromtimestamp(int(whole), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def v2_levels(levels: list[Any]) -> list[str]:
    # v2 writes prices and quantities as JSON numbers with full precision: the same digits.
    return [f'{{"price":{price},"qty":{qty}}}' for price, qty, *_ in levels]


def v2_event(message: dict[str, Any], time_text: str) -> str:
    """A v1 event as v2 says the same: heartbeat, status, or a subscribe answer."""
    if message["event"] == "heartbeat":
        return '{"channel":"heartbeat"}'
    if message["event"] == "systemStatus":
        return (
            '{"channel":"status","type":"update","data":[{"api_version":"v2",'
            '"connection_id":18239578009413566319,"system":"online","version":"2.0.0"}]}'
        )
    channel = message["channelName"].split("-")[0]
    depth = f',"depth":{message["subscription"]["depth"]}' if channel == "book" else ""
    return (
        f'{{"method":"subscribe","result":{{"channel":"{channel}"{depth},"snapshot":true,'
        f'"symbol":"{symbol_of(message["pair"])}"}},"success":true,'
        f'"time_in":"{time_text}","time_out":"{time_text}"}}'
    )


def v2_trades(symbol: str, rows: list[Any], trade_ids: dict[str, int]) -> tuple[str, list[int]]:
    """A v1 trade frame's rows as one v2 trade message, numbered on from ``trade_ids``."""
    ids, data = [], []
    for price, qty, time, side, order_type, _ in rows:
        trade_ids[symbol] += 1
        ids.append(trade_ids[symbol])
        data.append(
            f'{{"symbol":"{symbol}","side":"{"buy" if side == "b" else "sell"}",'
            f'"price":{price},"qty":{qty},'
            f'"ord_type":"{"limit" if order_type == "l" else "market"}",'
            f'"trade_id":{trade_ids[symbol]},"timestamp":"{rfc3339(time)}"}}'
        )
    return f'{{"channel":"trade","type":"update","data":[{",".join(data)}]}}', ids


def v2_ticker(symbol: str, t: dict[str, Any]) -> str:
    change = Decimal(t["c"][0]) - Decimal(t["o"][1])
    return (
        f'{{"channel":"ticker","type":"update","data":[{{"symbol":"{symbol}",'
        f'"bid":{t["b"][0]},"bid_qty":{t["b"][2]},"ask":{t["a"][0]},"ask_qty":{t["a"][2]},'
        f'"last":{t["c"][0]},"volume":{t["v"][1]},"vwap":{t["p"][1]},"low":{t["l"][1]},'
        f'"high":{t["h"][1]},"change":{change},"change_pct":0.0}}]}}'
    )


def v2_book(symbol: str, bodies: list[Any], books: dict[str, ReferenceBook]) -> str:
    """A v1 book frame as a v2 book message, its checksum the documented one of the test's book."""
    snapshot = "as" in bodies[0]
    if snapshot:
        asks, bids = bodies[0]["as"], bodies[0]["bs"]
        books[symbol] = ReferenceBook(V1_DEPTH)
        stamp = ""
    else:
        asks = [level for body in bodies for level in body.get("a", [])]
        bids = [level for body in bodies for level in body.get("b", [])]
        newest = max(asks + bids, key=lambda level: Decimal(level[2]))
        stamp = f',"timestamp":"{rfc3339(newest[2])}"'
    books[symbol].apply(asks, bids)
    return (
        f'{{"channel":"book","type":"{"snapshot" if snapshot else "update"}",'
        f'"data":[{{"symbol":"{symbol}","bids":[{",".join(v2_levels(bids))}],'
        f'"asks":[{",".join(v2_levels(asks))}],"checksum":{books[symbol].checksum()}{stamp}}}]}}'
    )


def v2_frames(frames: list[RecordedFrame]) -> tuple[list[bytes], list[list[int]]]:
    """Each v1 frame in WebSocket v2's documented shape, and the trade ids each frame assigns
    (v1 has none; v2 counts a pair's trades). Book checksums come from documented_checksum."""
    books: dict[str, ReferenceBook] = {}
    trade_ids: dict[str, int] = defaultdict(lambda: 1_000)
    converted: list[bytes] = []
    assigned: list[list[int]] = []
    for frame in frames:
        message = json.loads(frame.payload)
        ids: list[int] = []
        if isinstance(message, dict):
            seconds = f"{frame.receive_ns // 10**9}.{frame.receive_ns % 10**9:09d}"
            text = v2_event(message, rfc3339(seconds))
        elif kind_of(message) == "trade":
            text, ids = v2_trades(symbol_of(message[-1]), message[1], trade_ids)
        elif kind_of(message) == "ticker":
            text = v2_ticker(symbol_of(message[-1]), message[1])
        else:
            text = v2_book(symbol_of(message[-1]), message[1:-2], books)
        converted.append(text.encode())
        assigned.append(ids)
    return converted, assigned


def test_v2_frames_of_the_same_data_give_the_same_records(frames, v1_parsed):
    converted, assigned = v2_frames(frames)
    parser = VENUE.parser(["BTC/CHF"])
    per_pair: dict[str, list[int]] = defaultdict(list)
    compared = Counter[str]()
    for frame, payload, ids, v1 in zip(frames, converted, assigned, v1_parsed, strict=True):
        v2 = as_list(parser.parse(payload, frame.receive_ns))
        v1_records = as_list(v1)
        assert len(v2) == len(v1_records)
        for ours, theirs in zip(v2, v1_records, strict=True):
            compared[type(ours).__name__] += 1
            if isinstance(ours, DepthSnapshot):
                assert ours.checksum == json.loads(payload)["data"][0]["checksum"]
                ours = msgspec.structs.replace(ours, checksum=None)
            elif isinstance(ours, Trade):
                per_pair[ours.symbol].append(ours.trade_id)
                ours = msgspec.structs.replace(ours, trade_id=theirs.trade_id)
            assert ours == theirs
        assert [r.trade_id for r in v2 if isinstance(r, Trade)] == ids
    assert compared == Counter(type(r).__name__ for p in v1_parsed for r in as_list(p))
    assert all(ids == list(range(ids[0], ids[0] + len(ids))) for ids in per_pair.values())


def v2_book_frame(kind: str, asks: list[tuple[str, str]], checksum: int, bids=()) -> bytes:
    def levels(side: Any) -> str:
        return ",".join(f'{{"price":{price},"qty":{qty}}}' for price, qty in side)

    stamp = ',"timestamp":"2024-08-09T00:00:01.000001Z"' if kind == "update" else ""
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD",'
        f'"bids":[{levels(bids)}],"asks":[{levels(asks)}],"checksum":{checksum}{stamp}}}]}}'
    ).encode()


def test_a_v2_book_is_cut_to_its_depth_as_kraken_keeps_it():
    # Kraken keeps 10 levels and sends no removal for a level an insert pushes out of them.
    # Here 109.0 is pushed out, then cancelled unseen; when the best ask goes, Kraken sends the
    # level that becomes its 10th, 110.0. A book that kept 109.0 would checksum it in 110.0's
    # place.
    asks = [(f"{100 + i}.0", "1.00000000") for i in range(10)]
    bids = [(f"{99 - i}.0", "2.00000000") for i in range(10)]
    better, replacement = ("99.5", "3.00000000"), ("110.0", "4.00000000")
    parser = KrakenFrameParser(book_depth=10)

    parser.parse(v2_book_frame("snapshot", asks, documented_checksum(asks, bids), bids), 1)
    after_insert = [better, *asks[:9]]
    parser.parse(v2_book_frame("update", [better], documented_checksum(after_insert, bids)), 2)
    after_republish = [*asks[:9], replacement]
    update = parser.parse(
        v2_book_frame(
            "update",
            [("99.5", "0.00000000"), replacement],
            documented_checksum(after_republish, bids),
        ),
        3,
    )
    assert isinstance(update, DepthUpdate) and update.final_update_id == 3
    book = parser.books.get("BTC/USD")
    assert book is not None and book.asks() == after_republish


def test_v2_numbers_keep_the_digits_kraken_wrote():
    parser = KrakenFrameParser()
    base = (
        b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"%s",'
        b'"price":%s,"qty":%s,"ord_type":"limit","trade_id":7,'
        b'"timestamp":"2024-08-09T00:00:01.123456789Z"}]}'
    )
    sell = parser.parse(base % (b"sell", b"62016.20", b"0.00100000"), 5)
    buy = parser.parse(base % (b"buy", b"62016", b"1e-05"), 6)
    assert isinstance(sell, Trade) and isinstance(buy, Trade)
    assert (sell.price, sell.quantity, sell.trade_ns) == (
        "62016.20",
        "0.00100000",
        1723161601123456789,
    )
    assert (buy.price, buy.quantity) == ("62016", "0.00001")
    # side is the taker's: a taker sell met a resting buy, so the buyer was the maker
    assert (sell.is_buyer_maker, buy.is_buyer_maker) == (True, False)


def test_v2_tickers_get_ids_that_only_grow():
    parser = KrakenFrameParser()
    frame = (
        b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5,'
        b'"bid_qty":2.0,"ask":1.6,"ask_qty":3.0,"timestamp":"2024-08-09T00:00:01.000001Z"}]}'
    )
    first, second = parser.parse(frame, 10), parser.parse(frame, 11)
    assert isinstance(first, BookTicker) and isinstance(second, BookTicker)
    assert first.event_ns == first.update_id == 1723161601000001000
    assert second.update_id == first.update_id + 1
    # A new connection's parser starts from the time again: still above the older connection's.
    later = frame.replace(b"01.000001Z", b"01.000002Z")
    third = KrakenFrameParser().parse(later, 12)
    assert isinstance(third, BookTicker) and third.update_id > first.update_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-10-06T17:35:55.440295Z", 1696613755_440295000),
        ("2023-10-06T17:35:55Z", 1696613755_000000000),
        ("2023-10-06T17:35:55.123456789123Z", 1696613755_123456789),
        ("2023-10-06T19:35:55.5+02:00", 1696613755_500000000),
        ("1970-01-01T00:00:00.000000001Z", 1),
        ("2023-10-06T17:35:55.440295", None),
        ("2023-02-30T17:35:55Z", None),
        ("2023-10-06T24:00:00Z", None),
        ("yesterday", None),
    ],
)
def test_rfc3339_times_are_exact_ns(text: str, expected: int | None):
    assert rfc3339_ns(text) == expected


V2_BOOK = (
    b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":62016.1,'
    b'"qty":0.5}],"asks":[],"checksum":2806823658,"timestamp":"2024-08-09T00:00:01.1Z"}]}'
)


@pytest.mark.parametrize(
    ("frame", "kind", "field"),
    [
        (V2_BOOK.replace(b"62016.1", b"true"), "invalid field", "data[0].bids[0].price"),
        (V2_BOOK.replace(b"0.5", b"-0.5"), "invalid field", "data[0].bids[0].qty"),
        (V2_BOOK.replace(b',"checksum":2806823658', b""), "missing field", "data[0].checksum"),
        (V2_BOOK.replace(b"2806823658", b"4294967296"), "invalid field", "data[0].checksum"),
        (V2_BOOK.replace(b"00:00:01.1Z", b"later"), "invalid field", "data[0].timestamp"),
        (
            V2_BOOK.replace(b',"timestamp":"2024-08-09T00:00:01.1Z"', b""),
            "missing field",
            "data[0].timestamp",
        ),
        (V2_BOOK.replace(b'"update"', b'"delta"'), "invalid field", "type"),
        (V2_BOOK.replace(b'"book"', b'"ohlc"'), "unsupported stream", "channel"),
        (V2_BOOK[:50], "malformed json", None),
        (
            b'{"method":"subscribe","success":false,"error":"Currency pair not supported FOO/BAR",'
            b'"time_in":"2024-08-09T00:00:01.1Z","time_out":"2024-08-09T00:00:01.1Z"}',
            "unsupported stream",
            "error",
        ),
        (b'{"result":{}}', "missing field", "channel"),
    ],
)
def test_a_malformed_v2_frame_names_its_field(frame: bytes, kind: str, field: str | None):
    parser = KrakenFrameParser()
    with pytest.raises(KrakenParseError) as caught:
        parser.parse(frame, 1)
    assert (caught.value.kind, caught.value.field) == (kind, field)
    assert caught.value.raw == frame


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_mangled_frames_raise_only_parse_errors_or_resync(frames, version: str):
    # Any other exception would stop the feed instead of dead-lettering the frame.
    payloads = [f.payload for f in frames] if version == "v1" else v2_frames(frames)[0]
    new_parser = KrakenV1FrameParser if version == "v1" else KrakenFrameParser
    parser, rng, alphabet = new_parser(), random.Random(17), b'0123456789.-eE"[]{},:abrst '
    for payload in payloads:  # books first, so that updates reach the book code
        parser.parse(payload, 1)
    outcomes: Counter[str] = Counter()
    for _ in range(3_000):
        mangled = bytearray(rng.choice(payloads))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(mangled))
            if rng.random() < 0.5:
                mangled[position] = rng.choice(alphabet)
            else:
                del mangled[position]
        try:
            parser.parse(bytes(mangled), 1)
            outcomes["parsed"] += 1
        except KrakenParseError as error:
            assert error.raw == bytes(mangled)
            outcomes["parse error"] += 1
        except Resync:
            outcomes["resync"] += 1
            parser = new_parser()
            for payload in payloads[:100]:
                parser.parse(payload, 1)
    assert outcomes["parse error"] > 0 and outcomes["resync"] > 0


def test_a_v2_update_before_its_snapshot_asks_for_a_resync():
    with pytest.raises(Resync) as caught:
        KrakenFrameParser().parse(V2_BOOK, 1)
    assert caught.value.cause == "book_without_snapshot" and "BTC/USD" in caught.value.detail


# -- the venue ----------------------------------------------------------------------------------


def test_the_venue_subscribes_to_v2_channels_as_documented():
    assert (VENUE.name, VENUE.market, VENUE.contiguous_trade_ids) == ("KRAKEN", "spot", True)
    assert VENUE.symbol("btc/usd") == VENUE.symbol("XBT-USD") == "BTC/USD"
    assert VENUE.stream_url("wss://ws.kraken.com/v2", ["BTC/USD"], ["trade"]) == (
        "wss://ws.kraken.com/v2"
    )
    assert VENUE.stream_url("", ["BTC/USD"], ["trade"]) == "wss://ws.kraken.com/v2"
    messages = [
        json.loads(m)
        for m in VENUE.subscriptions(["btc/usd", "ETH/USD"], ["trade", "ticker", "book"])
    ]
    pairs = ["BTC/USD", "ETH/USD"]
    assert messages == [
        {"method": "subscribe", "params": {"channel": "trade", "symbol": pairs, "snapshot": True}},
        {
            "method": "subscribe",
            "params": {"channel": "ticker", "symbol": pairs, "event_trigger": "bbo"},
        },
        {"method": "subscribe", "params": {"channel": "book", "symbol": pairs, "depth": 10}},
    ]
    assert isinstance(VENUE.parser(pairs), KrakenFrameParser)
    assert VENUE.trade_history("https://api.kraken.com") is None
    with pytest.raises(ValueError, match="unknown Kraken channels"):
        VENUE.subscriptions(pairs, ["bookTicker"])


def test_the_v1_venue_spells_pairs_the_v1_way_on_the_wire():
    (message,) = [json.loads(m) for m in KRAKEN_V1.subscriptions(["btc/chf"], ["book"])]
    assert message == {
        "event": "subscribe",
        "pair": ["XBT/CHF"],
        "subscription": {"name": "book", "depth": 10},
    }
    assert KRAKEN_V1.symbol("XBT/CHF") == "BTC/CHF"
    assert isinstance(KRAKEN_V1.parser(["BTC/CHF"]), KrakenV1FrameParser)
