"""The one-decode way through combined-stream frames gives what the checked way gives.

Frames here are byte for byte in Binance's own layout (compact JSON, Binance's key order), the
layout the fast way checks decimals against; the frames of test_binance_wire.py (json.dumps,
with spaces) take the fast decode but the full decimal check.
"""

from __future__ import annotations

import pytest

from streaming.venues.binance import BinanceParseError, parse, parse_stream_frame
from streaming.venues.binance import frames as fast_frames
from streaming.venues.binance.records import AggTrade, BookTicker, DepthUpdate, Trade
from streaming.venues.binance.wire import TradeEvent

RECEIVE_NS = 1_723_161_255_400_000_000
TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":%s,"M":true}}'
)
AGG_TRADE = (
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT",'
    b'"a":12345,"p":"61837.63000000","q":"0.02000000","f":100,"l":105,"T":1723161255342,'
    b'"m":false,"M":true}}'
)
BOOK_TICKER = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    b'"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
DEPTH = (
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,'
    b'"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],'
    b'"a":[["61838.04000000","0.32332000"],["61839.00000000","1.00000000"]]}}'
)
EXPECTED = {
    TRADE % b"true": Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", True,
                           1723161255342_000_000, 1723161255343_000_000, RECEIVE_NS),
    TRADE % b"false": Trade("BTCUSDT", 3735683259, "61837.63000000", "0.02000000", False,
                            1723161255342_000_000, 1723161255343_000_000, RECEIVE_NS),
    AGG_TRADE: AggTrade("BTCUSDT", 12345, "61837.63000000", "0.02000000", 100, 105, False,
                        1723161255342_000_000, 1723161255343_000_000, RECEIVE_NS),
    BOOK_TICKER: BookTicker("BTCUSDT", 50093239212, "61837.63000000", "3.78826000",
                            "61837.64000000", "1.54698000", RECEIVE_NS, None),
    DEPTH: DepthUpdate("BTCUSDT", 50093239203, 50093239207,
                       (("55653.87000000", "0.00000000"),),
                       (("61838.04000000", "0.32332000"), ("61839.00000000", "1.00000000")),
                       1723161255308_000_000, RECEIVE_NS),
}  # fmt: skip
# A decimal field of each frame, by the bytes of its value.
DECIMALS = {
    TRADE % b"true": (b'"p":"61837.63000000"', "data.p"),
    AGG_TRADE: (b'"q":"0.02000000"', "data.q"),
    BOOK_TICKER: (b'"A":"1.54698000"', "data.A"),
    DEPTH: (b'["61839.00000000"', "data.a[1][0]"),
}


def learned(raw: bytes) -> bytes:
    """``raw`` after a frame of its stream was parsed once (each stream's first takes the
    checked way, which teaches the fast way the stream)."""
    parse_stream_frame(raw, RECEIVE_NS)
    return raw


def with_decimal(raw: bytes, value: bytes) -> bytes:
    field, _ = DECIMALS[raw]
    name, _, _ = field.rpartition(b'"')
    prefix = name[: name.rindex(b'"') + 1]
    return raw.replace(field, prefix + value + b'"')


@pytest.mark.parametrize("raw", list(EXPECTED))
def test_frames_of_a_learned_stream_give_the_documented_record(raw: bytes) -> None:
    # Arrange
    learned(raw)

    # Act
    record = parse_stream_frame(raw, RECEIVE_NS)

    # Assert
    assert record == EXPECTED[raw]
    assert record == parse._parse_checked(raw, RECEIVE_NS)


@pytest.mark.parametrize("bad", [b".5", b"5.", b".", b"", b"1.2.3", b"1e5", b"-1", b"1 2",
                                 "٣.٤".encode(), b"5.5\\n", b"5.5\\u0000"])  # fmt: skip
@pytest.mark.parametrize("raw", list(DECIMALS))
def test_a_bad_decimal_in_binance_layout_is_named_as_by_the_checked_way(
    raw: bytes, bad: bytes
) -> None:
    # Arrange
    frame = with_decimal(learned(raw), bad)

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(frame, RECEIVE_NS)

    # Assert
    assert (caught.value.kind, caught.value.field) == ("invalid field", DECIMALS[raw][1])
    assert caught.value.raw == frame


@pytest.mark.parametrize(("good", "value"), [(b"5", "'5'"), (b"\\u0035.5", "'5.5'")])
@pytest.mark.parametrize("raw", list(DECIMALS))
def test_a_good_decimal_off_the_layout_is_accepted_after_the_full_check(
    raw: bytes, good: bytes, value: str
) -> None:
    # Arrange: no dot, or an escaped digit: other bytes than Binance sends, the same decimals
    frame = with_decimal(learned(raw), good)

    # Act
    record = parse_stream_frame(frame, RECEIVE_NS)

    # Assert
    assert record == parse._parse_checked(frame, RECEIVE_NS)
    assert value in repr(record)


@pytest.mark.parametrize(
    ("frame", "kind", "field"),
    [(BOOK_TICKER.replace(b'"stream":"btcusdt@bookTicker",', b""), "missing field", "stream"),
     (BOOK_TICKER.replace(b'"u":50093239212,', b""), "missing field", "data.u"),
     (BOOK_TICKER.replace(b'"u":50093239212', b'"u":-1'), "invalid field", "data.u"),
     (BOOK_TICKER.replace(b"btcusdt@bookTicker", b"btcusdt@bookTicker", 1)[:-3],
      "malformed json", None),
     (BOOK_TICKER.replace(b"btcusdt@bookTicker", b"btcusdt@forceOrder"),
      "unsupported stream", "stream")],
)  # fmt: skip
def test_other_faults_of_a_learned_stream_are_named_as_before(
    frame: bytes, kind: str, field: str | None
) -> None:
    # Arrange
    learned(BOOK_TICKER)

    # Act
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(frame, RECEIVE_NS)

    # Assert
    assert (caught.value.kind, caught.value.field) == (kind, field)


def test_data_of_another_symbol_than_its_stream_is_checked_in_full_and_kept() -> None:
    # Arrange: the layout names the stream's symbol, so this frame is off it.
    learned(BOOK_TICKER)
    other = BOOK_TICKER.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"')

    # Act
    record = parse_stream_frame(other, RECEIVE_NS)

    # Assert
    assert isinstance(record, BookTicker) and record.symbol == "ETHUSDT"


def test_text_frames_take_the_checked_way_with_the_same_record() -> None:
    # Arrange
    learned(BOOK_TICKER)

    # Act
    record = parse_stream_frame(BOOK_TICKER.decode(), RECEIVE_NS)  # type: ignore[arg-type]

    # Assert
    assert record == EXPECTED[BOOK_TICKER]


def test_the_fast_way_learns_a_bounded_number_of_streams() -> None:
    # Arrange
    fast = fast_frames.FastFrames(parse._parse_checked)

    # Act
    for i in range(fast_frames.MAX_FAST_STREAMS + 10):
        fast.learn(f"sym{i}@trade", TradeEvent, parse._trade)

    # Assert: the union holds the learned streams and the one no stream has
    assert len(fast._frames) == fast_frames.MAX_FAST_STREAMS + 1
