"""Every message of the real recorded Binance sessions parses, and the data keeps its invariants."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from streaming.recordings import RecordedFrame, read_recording
from streaming.venues.binance.book import OrderBook
from streaming.venues.binance.parse import parse_rest_depth, parse_stream_frame
from streaming.venues.binance.records import (
    AggTrade,
    BinanceRecord,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Trade,
)

SESSIONS = {
    "BTCUSDT": ["btcusdt_20240808.txt.gz", "btcusdt_20240809.txt.gz"],
    "ETHUSDT": ["ethusdt_20240808.txt.gz", "ethusdt_20240809.txt.gz"],
    "cryptofeed": ["cryptofeed_binance_20210404.txt.gz"],
}
# From the data README: (trade count, first id, last id); ETHUSDT gives only the count.
README_TRADES = {"BTCUSDT": (19_904, 3735683259, 3735703162), "ETHUSDT": (14_515, None, None)}
README_CRYPTOFEED_COUNTS = {AggTrade: 1_910, DepthUpdate: 2_688, Kline: 118}
RECORD_TYPE_BY_STREAM = {"trade": Trade, "aggTrade": AggTrade, "bookTicker": BookTicker,
                         "depth@100ms": DepthUpdate, "kline_1m": Kline}  # fmt: skip

Parsed = list[tuple[RecordedFrame, BinanceRecord | DepthSnapshot]]


def snapshot_symbol(frame: RecordedFrame, session: str) -> str:
    """Symbol of a REST depth line: from its URL, else the session's only symbol."""
    query = parse_qs(urlparse(frame.source).query)
    return query["symbol"][0] if "symbol" in query else session


def parse_session(folder: Path, session: str) -> Parsed:
    """Parse every frame of a session's files, in order."""
    parsed: Parsed = []
    for name in SESSIONS[session]:
        for frame in read_recording(folder / name):
            if frame.is_rest:
                symbol = snapshot_symbol(frame, session)
                parsed.append((frame, parse_rest_depth(frame.payload, symbol, frame.receive_ns)))
            else:
                parsed.append((frame, parse_stream_frame(frame.payload, frame.receive_ns)))
    return parsed


@pytest.fixture(scope="module")
def ws_folder(shared_data: Path) -> Path:
    """Folder of the recorded WebSocket sessions."""
    return shared_data / "binance" / "ws"


@pytest.fixture(scope="module")
def parsed_sessions(ws_folder: Path) -> dict[str, Parsed]:
    """Every session parsed once (parsing raises on any message it cannot read)."""
    return {session: parse_session(ws_folder, session) for session in SESSIONS}


def of_type(parsed: Parsed, record_type: type) -> list:
    """Records of one type, in arrival order."""
    return [record for _, record in parsed if isinstance(record, record_type)]


@pytest.mark.parametrize("session", list(SESSIONS))
def test_every_stream_line_gives_the_record_its_stream_names(
    ws_folder: Path, parsed_sessions: dict[str, Parsed], session: str
) -> None:
    # Arrange: count stream lines by their stream name straight from the file text.
    expected: Counter[type] = Counter()
    for name in SESSIONS[session]:
        with gzip.open(ws_folder / name, "rt") as lines:
            for line in lines:
                if '{"stream":"' in line:
                    stream = line.split('{"stream":"', 1)[1].split('"', 1)[0]
                    expected[RECORD_TYPE_BY_STREAM[stream.split("@", 1)[1]]] += 1

    # Act
    parsed = Counter(type(record) for _, record in parsed_sessions[session])

    # Assert
    assert sum(expected.values()) > 0
    assert {t: n for t, n in parsed.items() if t is not DepthSnapshot} == dict(expected)


def test_cryptofeed_session_counts_match_the_readme(parsed_sessions: dict[str, Parsed]) -> None:
    # Act
    counts = Counter(type(record) for _, record in parsed_sessions["cryptofeed"])

    # Assert
    assert {t: counts[t] for t in README_CRYPTOFEED_COUNTS} == README_CRYPTOFEED_COUNTS
    assert counts[DepthSnapshot] == 3


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_trade_ids_are_contiguous_across_both_day_files(
    parsed_sessions: dict[str, Parsed], symbol: str
) -> None:
    # Arrange
    count, first_id, last_id = README_TRADES[symbol]

    # Act
    trades: list[Trade] = of_type(parsed_sessions[symbol], Trade)
    ids = [trade.trade_id for trade in trades]

    # Assert
    assert len(ids) == count
    assert ids == list(range(ids[0], ids[0] + count))
    assert first_id is None or (ids[0], ids[-1]) == (first_id, last_id)
    assert {trade.symbol for trade in trades} == {symbol}
    assert all(trade.trade_ns <= trade.event_ns for trade in trades)  # type: ignore[operator]


def test_agg_trade_ids_increase_per_symbol(parsed_sessions: dict[str, Parsed]) -> None:
    # Arrange
    by_symbol: dict[str, list[AggTrade]] = defaultdict(list)

    # Act
    for agg in of_type(parsed_sessions["cryptofeed"], AggTrade):
        by_symbol[agg.symbol].append(agg)

    # Assert
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT", "DOTUSDT"}
    for aggs in by_symbol.values():
        assert all(a.agg_id < b.agg_id for a, b in pairwise(aggs))
        assert all(a.first_trade_id <= a.last_trade_id for a in aggs)
        assert all(a.last_trade_id < b.first_trade_id for a, b in pairwise(aggs))


@pytest.mark.parametrize("session", ["BTCUSDT", "ETHUSDT"])
def test_book_ticker_is_never_crossed(parsed_sessions: dict[str, Parsed], session: str) -> None:
    # Act
    tickers: list[BookTicker] = of_type(parsed_sessions[session], BookTicker)

    # Assert
    assert len(tickers) > 1000
    assert all(Decimal(t.bid_price) < Decimal(t.ask_price) for t in tickers)
    assert all(t.event_ns is None and t.symbol == session for t in tickers)


def test_btcusdt_book_ticker_count_matches_the_readme(parsed_sessions: dict[str, Parsed]) -> None:
    # Act
    tickers = of_type(parsed_sessions["BTCUSDT"], BookTicker)
    depth = of_type(parsed_sessions["BTCUSDT"], DepthUpdate)

    # Assert
    assert (len(tickers), len(depth)) == (73_174, 6_495)


@pytest.mark.parametrize("session", list(SESSIONS))
def test_depth_update_ids_chain(parsed_sessions: dict[str, Parsed], session: str) -> None:
    # Arrange
    by_symbol: dict[str, list[DepthUpdate]] = defaultdict(list)

    # Act
    for update in of_type(parsed_sessions[session], DepthUpdate):
        by_symbol[update.symbol].append(update)

    # Assert
    assert by_symbol
    for updates in by_symbol.values():
        assert all(u.first_update_id <= u.final_update_id for u in updates)
        pairs = pairwise(updates)
        assert all(b.first_update_id == a.final_update_id + 1 for a, b in pairs)


@pytest.mark.parametrize("session", list(SESSIONS))
def test_synced_order_book_is_never_crossed(
    parsed_sessions: dict[str, Parsed], session: str
) -> None:
    # Arrange
    books: dict[str, OrderBook] = {}
    checked: Counter[str] = Counter()

    # Act
    for _, record in parsed_sessions[session]:
        if isinstance(record, DepthSnapshot):
            books.setdefault(record.symbol, OrderBook(record.symbol)).apply_snapshot(record)
        elif isinstance(record, DepthUpdate):
            book = books.setdefault(record.symbol, OrderBook(record.symbol))
            book.apply_update(record)
            if book.synced:
                assert not book.is_crossed(), (record.symbol, book.best_bid(), book.best_ask())
                checked[record.symbol] += 1

    # Assert: every book got synced and stayed in sync to the last update.
    assert checked and set(checked) == set(books)
    assert all(book.synced and not book.buffered for book in books.values())


def test_btcusdt_book_syncs_from_the_update_buffered_before_the_snapshot(
    parsed_sessions: dict[str, Parsed],
) -> None:
    # Arrange: updates received before the snapshot line, as in the recording.
    parsed = parsed_sessions["BTCUSDT"]
    at = next(i for i, (_, r) in enumerate(parsed) if isinstance(r, DepthSnapshot))
    snapshot = parsed[at][1]
    assert isinstance(snapshot, DepthSnapshot)
    book = OrderBook("BTCUSDT")
    for _, record in parsed[:at]:
        if isinstance(record, DepthUpdate):
            book.apply_update(record)

    # Act
    applied = book.apply_snapshot(snapshot)

    # Assert
    assert applied >= 1
    assert book.synced
    assert book.last_update_id is not None and book.last_update_id > snapshot.last_update_id


def test_depth_snapshot_files_parse(shared_data: Path) -> None:
    # Arrange
    files = sorted((shared_data / "binance" / "depth").glob("*.json"))

    # Act
    snapshots = [(path, parse_rest_depth(path.read_bytes(), "X", 0)) for path in files]

    # Assert
    assert len(snapshots) == 5
    for path, snapshot in snapshots:
        document = json.loads(path.read_text())
        assert snapshot.last_update_id == document["lastUpdateId"]
        assert [list(level) for level in snapshot.bids] == document["bids"]
        assert [list(level) for level in snapshot.asks] == document["asks"]
        assert Decimal(snapshot.bids[0][0]) < Decimal(snapshot.asks[0][0])


def test_recorded_snapshot_lines_match_the_snapshot_files(
    shared_data: Path, parsed_sessions: dict[str, Parsed]
) -> None:
    # Arrange
    folder = shared_data / "binance" / "depth"
    expected = {
        symbol: json.loads(
            (folder / f"binance_spot_depth_snapshot_{symbol.lower()}_20240808_hftbacktest.json")
            .read_text()
        )["lastUpdateId"]
        for symbol in ("BTCUSDT", "ETHUSDT")
    }  # fmt: skip

    # Act
    recorded = {s: of_type(parsed_sessions[s], DepthSnapshot)[0].last_update_id for s in expected}

    # Assert
    assert recorded == expected


def test_klines_have_consistent_ohlc_and_one_minute_span(
    parsed_sessions: dict[str, Parsed],
) -> None:
    # Act
    klines: list[Kline] = of_type(parsed_sessions["cryptofeed"], Kline)

    # Assert: Binance's 1m kline closes 59,999 ms after it opens.
    assert len(klines) == 118
    for k in klines:
        low, high = Decimal(k.low), Decimal(k.high)
        assert low <= min(Decimal(k.open), Decimal(k.close))
        assert max(Decimal(k.open), Decimal(k.close)) <= high
        assert (k.interval, k.close_ns - k.open_ns) == ("1m", 59_999_000_000)
        assert k.first_trade_id is not None and k.last_trade_id is not None
        assert k.last_trade_id - k.first_trade_id + 1 == k.trade_count
