"""Coinbase Advanced Trade behind the venue interface, over the real recorded session.

The recording (``../shared/data/coinbase/cryptofeed_coinbase_20260809.jsonl.gz``) is one
connection of 24 s: BTC-USD and ETH-USD on ``level2``, ``market_trades``, ``ticker``,
``candles`` and ``heartbeats``. Expectations are read from the frames themselves with the
standard library's JSON, apart from the per-channel frame counts the data README states.
"""

from __future__ import annotations

import calendar
import gzip
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from streaming.recordings import RecordedFrame, read_recording
from streaming.records import BookTicker, DepthSnapshot, DepthUpdate, MarketRecord, Trade
from streaming.venues.base import Resync, Venue
from streaming.venues.coinbase.book import BookNotReadyError, Books, OrderBook
from streaming.venues.coinbase.parse import CoinbaseFrameParser, CoinbaseParseError, parse_frames
from streaming.venues.coinbase.venue import VENUE, CoinbaseAdvancedTrade
from streaming.venues.coinbase.wire import rfc3339_ns
from streaming.venues.errors import INVALID_FIELD, MALFORMED_JSON, MISSING_FIELD, UNSUPPORTED_STREAM
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.venues

RECORDING = SHARED_DATA / "coinbase" / "cryptofeed_coinbase_20260809.jsonl.gz"
# The data README's frame counts per channel.
README_FRAMES = {"l2_data": 775, "ticker": 160, "market_trades": 59, "heartbeats": 25, "candles": 6}
IGNORED = {"heartbeats", "subscriptions", "candles"}
SECOND_NS = 1_000_000_000


class Parsed:
    """One frame of the recording: its bytes, its JSON and what the parser made of it."""

    def __init__(self, frame: RecordedFrame, parsed: Any) -> None:
        self.frame = frame
        self.message: dict[str, Any] = json.loads(frame.payload)
        self.records: list[MarketRecord] = (
            [] if parsed is None else parsed if isinstance(parsed, list) else [parsed]
        )
        self.returned_none = parsed is None

    @property
    def channel(self) -> str:
        return self.message["channel"]


def iso_ns(text: str) -> int:
    """An independent reading of a UTC RFC 3339 time to ns (strptime and timegm)."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    seconds = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return seconds * SECOND_NS + int((fraction + "0" * 9)[:9])


@pytest.fixture(scope="module")
def frames() -> list[RecordedFrame]:
    """The recording's WebSocket frames, in arrival order."""
    if not RECORDING.is_file():
        pytest.skip(f"the Coinbase recording {RECORDING} is absent")
    return [frame for frame in read_recording(RECORDING) if not frame.is_rest]


@pytest.fixture(scope="module")
def parsed(frames: list[RecordedFrame]) -> list[Parsed]:
    """Every frame through one parser, as one connection (any Resync or error fails here)."""
    parser = CoinbaseFrameParser()
    out = [Parsed(frame, parser.parse(frame.payload, frame.receive_ns)) for frame in frames]
    assert parser.stale_frames == 0
    return out


def records_of(parsed: list[Parsed], kind: type) -> list[Any]:
    return [record for p in parsed for record in p.records if type(record) is kind]


# -- the recording as a whole ---------------------------------------------------------------------
def test_the_recording_holds_the_frames_its_readme_names(parsed: list[Parsed]) -> None:
    counts = Counter(p.channel for p in parsed)
    assert {channel: counts[channel] for channel in README_FRAMES} == README_FRAMES


def test_every_frame_gives_records_or_is_one_of_the_ignored_channels(
    parsed: list[Parsed],
) -> None:
    for p in parsed:
        if p.channel in IGNORED:
            assert p.returned_none, p.channel
        else:
            assert p.records, p.frame.payload[:120]


def test_the_sequence_numbers_count_every_frame_across_channels(parsed: list[Parsed]) -> None:
    numbers = [p.message["sequence_num"] for p in parsed]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_records_per_type_equal_the_events_of_their_channel(parsed: list[Parsed]) -> None:
    for p in parsed:
        events = p.message["events"]
        expected: Counter[type] = Counter()
        if p.channel == "market_trades":
            expected[Trade] = sum(len(event["trades"]) for event in events)
        elif p.channel == "ticker":
            expected[BookTicker] = sum(len(event["tickers"]) for event in events)
        elif p.channel == "l2_data":
            kinds = Counter(event["type"] for event in events)
            expected[DepthSnapshot], expected[DepthUpdate] = kinds["snapshot"], kinds["update"]
        assert Counter(type(record) for record in p.records) == +expected


def test_every_record_names_coinbase_spot(parsed: list[Parsed]) -> None:
    records = [record for p in parsed for record in p.records]
    assert {(record.venue, record.market) for record in records} == {("COINBASE", "spot")}
    assert {record.instrument for record in records} == {"COINBASE:BTC-USD", "COINBASE:ETH-USD"}


# -- trades ---------------------------------------------------------------------------------------
def test_trades_keep_the_frames_values_and_times_exactly(parsed: list[Parsed]) -> None:
    for p in (p for p in parsed if p.channel == "market_trades"):
        sent = sorted(
            (trade for event in p.message["events"] for trade in event["trades"]),
            key=lambda trade: int(trade["trade_id"]),
        )
        assert len(sent) == len(p.records)
        for trade, record in zip(sent, p.records, strict=True):
            assert record == Trade(
                symbol=trade["product_id"],
                trade_id=int(trade["trade_id"]),
                price=trade["price"],
                quantity=trade["size"],
                is_buyer_maker=trade["side"] == "BUY",
                trade_ns=iso_ns(trade["time"]),
                event_ns=iso_ns(p.message["timestamp"]),
                receive_ns=p.frame.receive_ns,
                venue="COINBASE",
                market="spot",
            )


def test_trade_ids_count_up_by_one_per_product_in_the_order_handed_on(
    parsed: list[Parsed],
) -> None:
    ids: defaultdict[str, list[int]] = defaultdict(list)
    for trade in records_of(parsed, Trade):
        ids[trade.symbol].append(trade.trade_id)
    assert set(ids) == {"BTC-USD", "ETH-USD"}
    for symbol, run in ids.items():
        assert run == list(range(run[0], run[0] + len(run))), symbol
    assert VENUE.contiguous_trade_ids


def test_side_names_the_maker_trades_at_the_ask_sold_at_the_bid_bought(
    parsed: list[Parsed],
) -> None:
    """A trade that prints at (or through) the best ask took a resting sell order: its
    ``side`` must be SELL if Coinbase's side is the maker's, and BUY at the best bid. The book
    is the one built from the level2 frames received before the trade's frame; the snapshot's
    trades are older than any book here and are left out."""
    books = Books()
    at_ask: Counter[bool] = Counter()  # is_buyer_maker of the trades at or above the ask
    at_bid: Counter[bool] = Counter()
    for p in parsed:
        live = p.channel == "market_trades" and p.message["events"][0]["type"] == "update"
        for record in p.records:
            if isinstance(record, DepthSnapshot | DepthUpdate):
                books.apply(record)
            elif live and type(record) is Trade and record.symbol in books.by_symbol:
                book = books.by_symbol[record.symbol]
                bid, ask = book.best_bid(), book.best_ask()
                assert bid is not None and ask is not None
                price = Decimal(record.price)
                if price >= Decimal(ask[0]):
                    at_ask[record.is_buyer_maker] += 1
                elif price <= Decimal(bid[0]):
                    at_bid[record.is_buyer_maker] += 1
    assert at_ask[False] > 0 and at_bid[True] > 0
    assert at_ask[True] == 0 and at_bid[False] == 0


# -- tickers and depth ----------------------------------------------------------------------------
def test_tickers_are_the_frames_best_bid_and_ask(parsed: list[Parsed]) -> None:
    for p in (p for p in parsed if p.channel == "ticker"):
        sent = [ticker for event in p.message["events"] for ticker in event["tickers"]]
        expected = [
            BookTicker(
                symbol=ticker["product_id"],
                update_id=p.message["sequence_num"],
                bid_price=ticker["best_bid"],
                bid_qty=ticker["best_bid_quantity"],
                ask_price=ticker["best_ask"],
                ask_qty=ticker["best_ask_quantity"],
                receive_ns=p.frame.receive_ns,
                event_ns=iso_ns(p.message["timestamp"]),
                venue="COINBASE",
            )
            for ticker in sent
        ]
        assert p.records == expected
        assert all(Decimal(t.bid_price) < Decimal(t.ask_price) for t in expected)


def test_depth_records_keep_each_level_as_sent(parsed: list[Parsed]) -> None:
    for p in (p for p in parsed if p.channel == "l2_data"):
        sequence = p.message["sequence_num"]
        for event, record in zip(p.message["events"], p.records, strict=True):
            levels = event["updates"]
            bids = tuple(
                (x["price_level"], x["new_quantity"]) for x in levels if x["side"] == "bid"
            )
            asks = tuple(
                (x["price_level"], x["new_quantity"]) for x in levels if x["side"] == "offer"
            )
            assert len(bids) + len(asks) == len(levels)
            assert isinstance(record, DepthSnapshot | DepthUpdate)
            assert (record.symbol, record.bids, record.asks) == (event["product_id"], bids, asks)
            if event["type"] == "snapshot":
                assert type(record) is DepthSnapshot and record.last_update_id == sequence
                bid_prices = [Decimal(price) for price, _ in bids]
                ask_prices = [Decimal(price) for price, _ in asks]
                assert bid_prices == sorted(bid_prices, reverse=True)  # best level first
                assert ask_prices == sorted(ask_prices)
            else:
                assert type(record) is DepthUpdate
                assert record.first_update_id == record.final_update_id == sequence
                assert record.event_ns == iso_ns(p.message["timestamp"])


def test_the_book_is_never_crossed_and_meets_the_tickers(parsed: list[Parsed]) -> None:
    """The ``ticker`` and ``level2`` channels are batched apart: a ticker is sent at a match,
    level2 in batches of changes, so neither waits for the other. What holds in the recording,
    and is asserted: the book built from snapshot + updates is never crossed; every ticker's
    best bid and ask prices are the book's at some level2 frame received within a second of
    it; and most tickers (about three in four here) equal, quantities too, the book as of the
    last level2 frame before them. The rest lead the book by a frame or lag it by a few, and a
    handful show a top no level2 frame ever shows (a level that changed twice within one
    batch), so an exact match at every ticker is not something Coinbase promises."""
    books = Books()
    tops: defaultdict[str, list[tuple[int, tuple[Decimal, ...]]]] = defaultdict(list)
    tickers: list[tuple[int, BookTicker, tuple[Decimal, ...]]] = []
    for p in parsed:
        for record in p.records:
            if isinstance(record, DepthSnapshot | DepthUpdate):
                book = books.apply(record)
                assert not book.is_crossed()
                bid, ask = book.best_bid(), book.best_ask()
                assert bid is not None and ask is not None
                top = tuple(Decimal(value) for value in (*bid, *ask))
                tops[record.symbol].append((p.frame.receive_ns, top))
            elif type(record) is BookTicker and tops[record.symbol]:
                tickers.append((p.frame.receive_ns, record, tops[record.symbol][-1][1]))
    assert tickers
    exact = 0
    for seen, ticker, last_top in tickers:
        near = {(top[0], top[2]) for at, top in tops[ticker.symbol] if abs(at - seen) <= SECOND_NS}
        assert (Decimal(ticker.bid_price), Decimal(ticker.ask_price)) in near
        values = (ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty)
        exact += last_top == tuple(Decimal(value) for value in values)
    assert exact > len(tickers) / 2


def test_an_order_book_needs_its_snapshot_first(parsed: list[Parsed]) -> None:
    update = records_of(parsed, DepthUpdate)[0]
    with pytest.raises(BookNotReadyError):
        Books().apply(update)
    with pytest.raises(BookNotReadyError):
        OrderBook(update.symbol).apply(update)


# -- sequence gaps and repeats --------------------------------------------------------------------
def _first_after(frames: list[RecordedFrame], channel: bytes, start: int = 30) -> int:
    marker = b'"channel":"' + channel + b'"'
    return next(i for i in range(start, len(frames)) if frames[i].payload.startswith(b"{" + marker))


@pytest.mark.parametrize("channel", [b"l2_data", b"ticker", b"market_trades", b"heartbeats"])
def test_a_recording_with_one_frame_removed_raises_resync(
    frames: list[RecordedFrame], channel: bytes
) -> None:
    removed = _first_after(frames, channel)
    sequence = json.loads(frames[removed].payload)["sequence_num"]
    parser = CoinbaseFrameParser()
    for frame in frames[:removed]:
        parser.parse(frame.payload, frame.receive_ns)
    with pytest.raises(Resync) as lost:
        parser.parse(frames[removed + 1].payload, frames[removed + 1].receive_ns)
    assert lost.value.cause == "sequence_gap"
    assert lost.value.detail == f"expected sequence_num {sequence} got {sequence + 1}"


def test_a_repeated_frame_is_dropped_and_counted(frames: list[RecordedFrame]) -> None:
    repeated = _first_after(frames, b"market_trades")
    with_repeat = [*frames[: repeated + 3], frames[repeated], *frames[repeated + 3 :]]
    parser = CoinbaseFrameParser()
    results = [parser.parse(f.payload, f.receive_ns) for f in with_repeat]
    assert results[repeated + 3] is None
    assert parser.stale_frames == 1
    plain = parse_frames([(f.payload, f.receive_ns) for f in frames])
    assert parse_frames([(f.payload, f.receive_ns) for f in with_repeat]) == plain


# -- malformed frames -----------------------------------------------------------------------------
def _edit(
    frames: list[RecordedFrame], channel: bytes, change: Callable[[dict[str, Any]], None]
) -> bytes:
    message = json.loads(frames[_first_after(frames, channel)].payload)
    change(message)
    return json.dumps(message).encode()


def _set_trade(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["events"][0]["trades"][0].__setitem__(field, value)


def _set_level(index: int, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["events"][0]["updates"][index].__setitem__(field, value)


TRADE = "events[0].trades[0]"
MALFORMED = [
    (b"market_trades", _set_trade("price", "65,083.67"), INVALID_FIELD, f"{TRADE}.price"),
    (b"market_trades", _set_trade("size", "-0.1"), INVALID_FIELD, f"{TRADE}.size"),
    (b"market_trades", _set_trade("trade_id", "10685x"), INVALID_FIELD, f"{TRADE}.trade_id"),
    (b"market_trades", _set_trade("time", "yesterday"), INVALID_FIELD, f"{TRADE}.time"),
    (b"market_trades", _set_trade("side", "HOLD"), INVALID_FIELD, f"{TRADE}.side"),
    (b"market_trades", lambda m: m["events"][0]["trades"][0].pop("price"), MISSING_FIELD,
     f"{TRADE}.price"),
    (b"ticker", lambda m: m["events"][0]["tickers"][0].__setitem__("best_ask", ""),
     INVALID_FIELD, "events[0].tickers[0].best_ask"),
    (b"l2_data", _set_level(0, "new_quantity", "1e-3"), INVALID_FIELD,
     "events[0].updates[0].new_quantity"),
    (b"l2_data", _set_level(0, "side", "ask"), INVALID_FIELD, "events[0].updates[0].side"),
    (b"heartbeats", lambda m: m.__setitem__("timestamp", 1786309548), INVALID_FIELD, "timestamp"),
    (b"ticker", lambda m: m.__setitem__("timestamp", "2026-08-09 21:05:48Z"), INVALID_FIELD,
     "timestamp"),
    (b"ticker", lambda m: m.pop("sequence_num"), MISSING_FIELD, "sequence_num"),
    (b"ticker", lambda m: m.__setitem__("sequence_num", -1), INVALID_FIELD, "sequence_num"),
    (b"ticker", lambda m: m.__setitem__("channel", "level3"), UNSUPPORTED_STREAM, "channel"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "change", "kind", "field"), MALFORMED)
def test_a_malformed_frame_names_the_field_and_keeps_the_bytes(
    frames: list[RecordedFrame],
    channel: bytes,
    change: Callable[[dict[str, Any]], None],
    kind: str,
    field: str,
) -> None:
    raw = _edit(frames, channel, change)
    with pytest.raises(CoinbaseParseError) as error:
        CoinbaseFrameParser().parse(raw, 1)
    assert (error.value.kind, error.value.field, error.value.raw) == (kind, field, raw)


@pytest.mark.parametrize(
    ("raw", "kind", "field"),
    [
        (b'{"channel":"ticker","sequence_num":3,', MALFORMED_JSON, None),
        (b'{"type":"error","message":"failure to subscribe"}', UNSUPPORTED_STREAM, "type"),
        (b'{"sequence_num":3,"events":[]}', MISSING_FIELD, "channel"),
    ],
)
def test_bytes_that_are_no_frame_are_refused(raw: bytes, kind: str, field: str | None) -> None:
    with pytest.raises(CoinbaseParseError) as error:
        CoinbaseFrameParser().parse(raw, 1)
    assert (error.value.kind, error.value.field, error.value.raw) == (kind, field, raw)


def test_an_unknown_channel_is_refused_but_its_sequence_number_counts(
    frames: list[RecordedFrame],
) -> None:
    index = _first_after(frames, b"ticker")
    parser = CoinbaseFrameParser()
    for frame in frames[:index]:
        parser.parse(frame.payload, frame.receive_ns)
    with pytest.raises(CoinbaseParseError):
        parser.parse(frames[index].payload.replace(b'"ticker"', b'"level3"', 1), 1)
    parser.parse(frames[index + 1].payload, frames[index + 1].receive_ns)  # no Resync
    assert parser.next_sequence == json.loads(frames[index + 1].payload)["sequence_num"] + 1


def test_an_unreadable_level2_frame_loses_the_book_and_the_next_frame_resyncs(
    frames: list[RecordedFrame],
) -> None:
    index = _first_after(frames, b"l2_data")
    parser = CoinbaseFrameParser()
    for frame in frames[:index]:
        parser.parse(frame.payload, frame.receive_ns)
    broken = _edit(frames, b"l2_data", _set_level(0, "price_level", "N/A"))
    with pytest.raises(CoinbaseParseError):
        parser.parse(broken, 1)
    with pytest.raises(Resync) as lost:
        parser.parse(frames[index + 1].payload, frames[index + 1].receive_ns)
    assert lost.value.cause == "book_lost"


def test_a_level2_update_before_its_snapshot_resyncs(frames: list[RecordedFrame]) -> None:
    update = frames[_first_after(frames, b"l2_data")]
    with pytest.raises(Resync) as lost:
        CoinbaseFrameParser().parse(update.payload, update.receive_ns)
    assert lost.value.cause == "book_lost"


# -- times ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "2026-08-09T21:05:48.228568804Z",
        "2026-08-09T21:05:38.50436Z",
        "2026-08-09T21:05:42.514318Z",
        "2026-08-09T21:05:48Z",
        "1970-01-01T00:00:00.000000001Z",
    ],
)
def test_rfc3339_times_are_read_exactly(text: str) -> None:
    assert rfc3339_ns(text) == iso_ns(text)


def test_rfc3339_offsets_and_excess_digits() -> None:
    base = iso_ns("2026-08-09T21:05:48.123456789Z")
    assert rfc3339_ns("2026-08-09T23:05:48.123456789+02:00") == base
    assert rfc3339_ns("2026-08-09T20:35:48.123456789-00:30") == base
    assert rfc3339_ns("2026-08-09T21:05:48.1234567891234Z") == base


@pytest.mark.parametrize(
    "text",
    ["2026-02-30T00:00:00Z", "2026-08-09T24:00:00Z", "2026-08-09 21:05:48Z",
     "2026-08-09T21:05:48", "2026-08-09T21:05:48.Z", "１９７０-01-01T00:00:00Z"],
)  # fmt: skip
def test_rfc3339_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError):
        rfc3339_ns(text)


# -- the venue ------------------------------------------------------------------------------------
def _sent_subscriptions() -> list[dict[str, Any]]:
    """What the recording's client sent once connected."""
    with gzip.open(RECORDING, "rt") as handle:
        lines = [json.loads(line) for line in handle]
    return [json.loads(line["data"]) for line in lines if line["t"] == "send"]


def test_the_venue_interface() -> None:
    venue: Venue = VENUE
    assert isinstance(VENUE, CoinbaseAdvancedTrade)
    assert (venue.name, venue.market) == ("COINBASE", "spot")
    assert venue.default_channels == ("level2", "market_trades", "ticker", "heartbeats")
    assert venue.symbol(" btc-usd ") == "BTC-USD"
    base = "wss://advanced-trade-ws.coinbase.com"
    assert venue.stream_url(base, ["BTC-USD"], venue.default_channels) == base
    assert venue.trade_history("https://api.coinbase.com") is None
    assert isinstance(venue.parser(["BTC-USD"]), CoinbaseFrameParser)
    with pytest.raises(ValueError, match="unknown Coinbase channels"):
        venue.subscriptions(["BTC-USD"], ["trades"])


def test_subscriptions_are_one_message_per_channel_as_the_recorded_client_sent(
    frames: list[RecordedFrame],
) -> None:
    sent = _sent_subscriptions()
    channels = [message["channel"] for message in sent]
    messages = [json.loads(text) for text in VENUE.subscriptions(["btc-usd", "eth-usd"], channels)]
    for ours, theirs in zip(messages, sent, strict=True):
        if theirs["channel"] == "heartbeats":  # the connection's channel: no products needed
            assert ours == {"type": "subscribe", "channel": "heartbeats"}
        else:
            assert ours == theirs
