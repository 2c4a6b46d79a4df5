"""Binance stream parsing against hand-written messages in Binance's documented spot formats."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from streaming.venues.binance import parse
from streaming.venues.binance.errors import BinanceParseError
from streaming.venues.binance.parse import (
    parse_agg_trade,
    parse_book_ticker,
    parse_depth_update,
    parse_kline,
    parse_stream_frame,
    parse_stream_payload,
    parse_trade,
)
from streaming.venues.binance.records import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    Trade,
)

RECEIVE_NS = 1_672_515_782_200_000_001

# Payloads as in Binance's "WebSocket Streams" documentation for spot.
TRADE = {"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001",
         "q": "100", "T": 1672515782134, "m": True, "M": True}  # fmt: skip
AGG_TRADE = {"e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001",
             "q": "100", "f": 100, "l": 105, "T": 1672515782134, "m": True, "M": True}  # fmt: skip
BOOK_TICKER = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
               "a": "25.36520000", "A": "40.66000000"}  # fmt: skip
DEPTH_UPDATE = {"e": "depthUpdate", "E": 1672515782136, "s": "BNBBTC", "U": 157, "u": 160,
                "b": [["0.0024", "10"]], "a": [["0.0026", "100"], ["0.0027", "0"]]}  # fmt: skip
KLINE = {"e": "kline", "E": 1672515782136, "s": "BNBBTC", "k": {
    "t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100, "L": 200,
    "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015", "v": "1000", "n": 100,
    "x": False, "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456"}}  # fmt: skip

EXPECTED = {
    "trade": Trade("BNBBTC", 12345, "0.001", "100", True, 1672515782134_000_000,
                   1672515782136_000_000, RECEIVE_NS),
    "aggTrade": AggTrade("BNBBTC", 12345, "0.001", "100", 100, 105, True,
                         1672515782134_000_000, 1672515782136_000_000, RECEIVE_NS),
    "bookTicker": BookTicker("BNBUSDT", 400900217, "25.35190000", "31.21000000",
                             "25.36520000", "40.66000000", RECEIVE_NS, None),
    "depth@100ms": DepthUpdate("BNBBTC", 157, 160, (("0.0024", "10"),),
                               (("0.0026", "100"), ("0.0027", "0")),
                               1672515782136_000_000, RECEIVE_NS),
    "kline_1m": Kline("BNBBTC", "1m", 1672515780000_000_000, 1672515839999_000_000, "0.0010",
                      "0.0025", "0.0015", "0.0020", "1000", "1.0000", 100, "500", "0.500",
                      False, 1672515782136_000_000, RECEIVE_NS, 100, 200),
}  # fmt: skip
PAYLOADS = {"trade": TRADE, "aggTrade": AGG_TRADE, "bookTicker": BOOK_TICKER,
            "depth@100ms": DEPTH_UPDATE, "kline_1m": KLINE}  # fmt: skip
RAW_PARSERS = {"trade": parse_trade, "aggTrade": parse_agg_trade,
               "bookTicker": parse_book_ticker, "depth@100ms": parse_depth_update,
               "kline_1m": parse_kline}  # fmt: skip
# A value of the wrong JSON type for each field type the payloads use.
WRONG_TYPE = {int: "12", str: 12, bool: "true", list: "[]", dict: [1]}


def frame(kind: str, data: Any) -> bytes:
    """A combined-stream frame for a payload."""
    return json.dumps({"stream": f"bnbbtc@{kind}", "data": data}).encode()


def leaf_paths(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, value) of an object's fields, nested objects included, in Binance notation."""
    items: list[tuple[str, Any]] = []
    for key, child in value.items():
        child_path = f"{path}.{key}" if path else key
        items.append((child_path, child))
        if isinstance(child, dict):
            items.extend(leaf_paths(child, child_path))
    return items


def replaced(payload: dict[str, Any], path: str, value: Any = None, *, drop: bool = False) -> Any:
    """Copy of payload with the field at a dotted path set to value (or removed)."""
    result = copy.deepcopy(payload)
    *parents, name = path.split(".")
    target = result
    for parent in parents:
        target = target[parent]
    if drop:
        del target[name]
    else:
        target[name] = value
    return result


# Fields Binance documents as "Ignore": not required by our types.
IGNORED = {"M", "k.B"}
REQUIRED = [
    (kind, path, value)
    for kind, payload in PAYLOADS.items()
    for path, value in leaf_paths(payload)
    if path not in IGNORED
]


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_combined_frame_gives_the_documented_record(kind: str) -> None:
    # Arrange
    raw = frame(kind, PAYLOADS[kind])

    # Act
    record = parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert record == EXPECTED[kind]


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_raw_stream_payload_gives_the_same_record(kind: str) -> None:
    # Arrange
    raw = json.dumps(PAYLOADS[kind]).encode()

    # Act
    by_function = RAW_PARSERS[kind](raw, RECEIVE_NS)
    by_stream_name = parse_stream_payload(f"bnbbtc@{kind}", raw, RECEIVE_NS)

    # Assert
    assert by_function == EXPECTED[kind]
    assert by_stream_name == EXPECTED[kind]


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_unknown_extra_fields_are_tolerated(kind: str) -> None:
    # Arrange
    data = {**PAYLOADS[kind], "zz": {"new": [1, 2.5, None]}, "X": "later addition"}
    raw = json.dumps({"stream": f"bnbbtc@{kind}", "data": data, "extra": 1}).encode()

    # Act
    record = parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert record == EXPECTED[kind]


def test_text_frames_are_accepted_like_bytes() -> None:
    # Arrange
    text = frame("trade", TRADE).decode()

    # Act
    record = parse_stream_frame(text, RECEIVE_NS)  # type: ignore[arg-type]

    # Assert
    assert record == EXPECTED["trade"]


def test_futures_style_book_ticker_keeps_its_event_time() -> None:
    # Arrange
    raw = frame("bookTicker", {**BOOK_TICKER, "e": "bookTicker", "E": 1568014460893})

    # Act
    record = parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert isinstance(record, BookTicker)
    assert record.event_ns == 1568014460893_000_000


def test_kline_without_trades_has_no_trade_ids() -> None:
    # Arrange: Binance sends f = L = -1 for an interval without trades.
    empty = replaced(replaced(replaced(KLINE, "k.f", -1), "k.L", -1), "k.n", 0)

    # Act
    record = parse_kline(json.dumps(empty).encode(), RECEIVE_NS)

    # Assert
    assert (record.first_trade_id, record.last_trade_id, record.trade_count) == (None, None, 0)


@pytest.mark.parametrize(("kind", "path"), [(k, p) for k, p, _ in REQUIRED])
def test_missing_required_field_is_named(kind: str, path: str) -> None:
    # Arrange
    raw = frame(kind, replaced(PAYLOADS[kind], path, drop=True))

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.field == f"data.{path}"
    assert caught.value.kind == "missing field"
    assert caught.value.raw == raw


@pytest.mark.parametrize(("kind", "path", "value"), REQUIRED)
def test_mistyped_field_is_named(kind: str, path: str, value: Any) -> None:
    # Arrange
    raw = frame(kind, replaced(PAYLOADS[kind], path, WRONG_TYPE[type(value)]))

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.field == f"data.{path}"
    assert caught.value.kind == "invalid field"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("bad", ["abc", "-1", "1e5", "", "1.", ".5", "1 2", "0x10", "1\n"])
@pytest.mark.parametrize(
    ("kind", "path"),
    [("trade", "p"), ("trade", "q"), ("aggTrade", "p"), ("aggTrade", "q"), ("bookTicker", "b"),
     ("bookTicker", "B"), ("bookTicker", "a"), ("bookTicker", "A"), ("kline_1m", "k.c")],
)  # fmt: skip
def test_price_that_is_not_a_plain_decimal_is_rejected(kind: str, path: str, bad: str) -> None:
    # Arrange
    raw = frame(kind, replaced(PAYLOADS[kind], path, bad))

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.field == f"data.{path}"
    assert caught.value.kind == "invalid field"


@pytest.mark.parametrize(
    ("side", "level", "bad", "path"),
    [("b", [["0.0024", "abc"]], "abc", "b[0][1]"),
     ("a", [["0.0026", "100"], ["1 2", "3"]], "1 2", "a[1][0]"),
     ("a", [["0.0026"]], None, "a[0]"),
     ("b", [["0.0024", 10]], None, "b[0][1]")],
)  # fmt: skip
def test_bad_depth_level_is_named(side: str, level: Any, bad: str | None, path: str) -> None:
    # Arrange
    raw = frame("depth@100ms", {**DEPTH_UPDATE, side: level})

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.field == f"data.{path}"
    assert bad is None or repr(bad) in caught.value.reason


def test_negative_or_oversized_ids_are_rejected() -> None:
    # Arrange
    negative = frame("trade", {**TRADE, "t": -5})
    oversized = frame("trade", {**TRADE, "E": 2**64})

    # Act
    with pytest.raises(BinanceParseError) as negative_error:
        parse_stream_frame(negative, RECEIVE_NS)
    with pytest.raises(BinanceParseError) as oversized_error:
        parse_stream_frame(oversized, RECEIVE_NS)

    # Assert
    assert negative_error.value.field == "data.t"
    assert oversized_error.value.field == "data.E"


def test_event_type_must_match_the_stream() -> None:
    # Arrange
    raw = frame("trade", {**TRADE, "e": "aggTrade"})

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.field == "data.e"


@pytest.mark.parametrize("cut", [1, 10, 25, 60, -2, -1])
def test_truncated_json_is_a_parse_error(cut: int) -> None:
    # Arrange
    raw = frame("trade", TRADE)[:cut]

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.kind == "malformed json"
    assert caught.value.raw == raw


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe{}", b'{"stream": "bnbbtc@trade", "data": {}} trailing',
     b"[1, 2]", b"null", b'{"data": {}}', b'{"stream": "bnbbtc@trade", "data": null}',
     b'{"stream": "bnbbtc@trade", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
)  # fmt: skip
def test_malformed_frames_give_only_the_typed_error(raw: bytes) -> None:
    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.kind in {"malformed json", "missing field", "invalid field"}
    assert caught.value.raw == raw


@pytest.mark.parametrize(
    "stream", ["bnbbtc@forceOrder", "bnbbtc@depth5@100ms", "@trade", "bnbbtc", "bnbbtc@ticker"]
)
def test_unsupported_stream_is_a_typed_error(stream: str) -> None:
    # Arrange
    raw = json.dumps({"stream": stream, "data": TRADE}).encode()

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert caught.value.kind == "unsupported stream"
    assert caught.value.field == "stream"
    assert stream in caught.value.reason


def test_stream_route_cache_stays_bounded() -> None:
    # Arrange
    names = [f"sym{i}@trade" for i in range(parse._MAX_CACHED_STREAMS + 100)]

    # Act
    records = [parse_stream_payload(name, json.dumps(TRADE).encode(), RECEIVE_NS) for name in names]

    # Assert
    assert all(record == EXPECTED["trade"] for record in records)
    assert len(parse._ROUTES_BY_STREAM) <= parse._MAX_CACHED_STREAMS
