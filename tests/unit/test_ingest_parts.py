"""The feed's parts on their own: trade sequencing, reconnect backoff, dead letters, stream URLs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from streaming.ingest import (
    Backoff,
    DeadLetterWriter,
    TradeSequencer,
    read_dead_letters,
)
from streaming.venues.binance import BinanceParseError, Trade, parse_stream_frame
from streaming.venues.binance.venue import combined_stream_url

GOOD_FRAME = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
)


def trade(trade_id: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(symbol, trade_id, "100.0", "1.0", False, trade_id * 1000, None, trade_id)


def parse_error(raw: bytes) -> BinanceParseError:
    with pytest.raises(BinanceParseError) as caught:
        parse_stream_frame(raw, 1)
    return caught.value


# -- TradeSequencer -------------------------------------------------------------------------------
def test_in_order_trades_are_released_as_they_come() -> None:
    sequencer = TradeSequencer("BTCUSDT", next_id=10)

    released = []
    for trade_id in range(10, 15):
        sequencer.offer(trade(trade_id))
        released += sequencer.release()

    assert [t.trade_id for t in released] == list(range(10, 15))
    assert sequencer.last_id == 14
    assert sequencer.missing() is None


def test_only_the_very_next_id_with_nothing_held_is_taken_at_once() -> None:
    sequencer = TradeSequencer("BTCUSDT", next_id=10)
    held = TradeSequencer("BTCUSDT", next_id=10)
    held.offer(trade(12))  # 11 missing: 12 waits

    taken = [sequencer.take_next(trade(i)) for i in (10, 11, 13, 12)]
    behind_a_gap = held.take_next(trade(10))

    assert taken == [True, True, False, True]  # 13 was not the next id
    assert sequencer.next_id == 13 and sequencer.pending_count == 0
    assert behind_a_gap is False  # offer() and release() order it with what is held
    assert TradeSequencer("BTCUSDT").take_next(trade(1)) is False  # no starting point yet


def test_repeats_and_ids_at_or_below_the_resume_point_are_dropped() -> None:
    resume_point = 20
    sequencer = TradeSequencer("BTCUSDT", next_id=resume_point + 1)

    accepted = [sequencer.offer(trade(i)) for i in (resume_point, resume_point + 1)]
    first = sequencer.release()
    repeated = sequencer.offer(trade(resume_point + 1))

    assert accepted == [False, True]
    assert [t.trade_id for t in first] == [resume_point + 1]
    assert repeated is False
    assert sequencer.release() == []


def test_a_reordered_trade_is_held_until_the_missing_one_arrives() -> None:
    sequencer = TradeSequencer("BTCUSDT", next_id=1)

    sequencer.offer(trade(2))
    held = sequencer.release()
    gap, opened = sequencer.missing(), sequencer.gap_opened_s
    sequencer.offer(trade(1))
    released = sequencer.release()

    assert held == []
    assert gap == (1, 1)
    assert opened is not None
    assert [t.trade_id for t in released] == [1, 2]
    assert sequencer.gap_opened_s is None
    assert sequencer.pending_count == 0


def test_missing_reports_the_lowest_run_of_absent_ids() -> None:
    sequencer = TradeSequencer("BTCUSDT", next_id=100)
    for trade_id in (104, 105, 109):
        sequencer.offer(trade(trade_id))

    sequencer.release()

    assert sequencer.missing() == (100, 103)
    assert sequencer.pending_count == 3


def test_skipping_an_unfillable_range_releases_the_trades_behind_it() -> None:
    sequencer = TradeSequencer("BTCUSDT", next_id=100)
    for trade_id in (104, 105, 109):
        sequencer.offer(trade(trade_id))

    released = sequencer.skip_to(104)

    assert [t.trade_id for t in released] == [104, 105]
    assert sequencer.missing() == (106, 108)


def test_a_cold_start_begins_at_the_first_trade_seen() -> None:
    sequencer = TradeSequencer("BTCUSDT")
    first_seen = 5_000

    sequencer.offer(trade(first_seen))
    released = sequencer.release()

    assert [t.trade_id for t in released] == [first_seen]
    assert sequencer.next_id == first_seen + 1


# -- Backoff --------------------------------------------------------------------------------------
def test_backoff_ceiling_grows_exponentially_up_to_the_maximum() -> None:
    random.seed(3)
    backoff = Backoff(initial_s=0.1, max_s=1.0, multiplier=2.0)

    delays = [backoff.next_delay() for _ in range(8)]

    ceilings = [min(1.0, 0.1 * 2.0**n) for n in range(8)]
    assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule


def test_retry_after_is_a_floor_and_reset_starts_over() -> None:
    backoff = Backoff(initial_s=0.1, max_s=0.5)
    for _ in range(5):
        backoff.next_delay()

    asked = backoff.next_delay(retry_after_s=7.0)
    backoff.reset()
    fresh = backoff.next_delay()

    assert asked >= 7.0
    assert backoff.failures == 1
    assert fresh <= 0.1


def test_backoff_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=2.0, max_s=1.0)


# -- dead letters ---------------------------------------------------------------------------------
def test_dead_letters_keep_the_exact_bytes_reason_and_receive_time(tmp_path: Path) -> None:
    path = tmp_path / "letters" / "dead.jsonl"
    bad_frames = [GOOD_FRAME[: len(GOOD_FRAME) // 2], b"\xff\xfe not utf-8", GOOD_FRAME[:-2] + b"}"]
    errors = [parse_error(raw) for raw in bad_frames]

    with DeadLetterWriter(path) as writer:
        for receive_ns, (raw, error) in enumerate(zip(bad_frames, errors, strict=True), 1):
            writer.write(raw, receive_ns, error)
        readable_before_close = list(read_dead_letters(path))
    letters = list(read_dead_letters(path))

    assert [d.raw for d in letters] == bad_frames
    assert [d.receive_ns for d in letters] == [1, 2, 3]
    assert [(d.kind, d.field, d.reason) for d in letters] == [
        (e.kind, e.field, str(e)) for e in errors
    ]
    assert readable_before_close == letters


def test_a_restarted_writer_appends_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    error = parse_error(b"{")
    with DeadLetterWriter(path) as writer:
        writer.write(b"{", 1, error)
    with DeadLetterWriter(path) as writer:
        writer.write(b"[", 2, error)
    with open(path, "ab") as file:  # a crash in the middle of a third record
        file.write(json.dumps({"receive_ns": 3}).encode()[:7])

    letters = list(read_dead_letters(path))

    assert [d.raw for d in letters] == [b"{", b"["]


# -- stream URL -----------------------------------------------------------------------------------
def test_combined_stream_url_lists_every_symbol_channel_pair() -> None:
    url = combined_stream_url("wss://stream.binance.com:9443/", ["BTCUSDT", "ETHUSDT"], ["trade"])

    streams = url.split("?streams=", 1)[1].split("/")

    assert url.startswith("wss://stream.binance.com:9443/stream?")
    assert streams == ["btcusdt@trade", "ethusdt@trade"]


def test_combined_stream_url_needs_a_symbol_and_a_channel() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combined_stream_url("ws://x", [], ["trade"])


# -- MarketFeed's frame handler -------------------------------------------------------------------
async def test_the_feeds_frame_handler_takes_what_the_parser_takes_and_letters_the_rest(
    tmp_path: Path,
) -> None:
    # Arrange: a stream the parser has seen (the fast way) and frames it must refuse
    from streaming.ingest import MarketFeed

    parse_stream_frame(GOOD_FRAME, 1)
    nxt = GOOD_FRAME.replace(b'"t":3735683259', b'"t":3735683260')
    empty_side = GOOD_FRAME.replace(b'"61837.63000000"', b'".63000000"')
    id_as_text = GOOD_FRAME.replace(b'"t":3735683259', b'"t":"3735683259"')
    feed = MarketFeed("ws://unused", "http://unused", ["BTCUSDT"],
                      dead_letter_path=tmp_path / "dead.jsonl")  # fmt: skip

    # Act
    async with feed:  # opens the dead-letter file; no connection is made
        as_bytes = feed._handle(GOOD_FRAME, 5)
        as_text = feed._handle(nxt.decode(), 6)  # a text frame: the checked way
        refused = [feed._handle(raw, 7) for raw in (empty_side, id_as_text, b"{not json")]

    # Assert
    assert as_bytes == [parse_stream_frame(GOOD_FRAME, 5)]  # a cold start's first: released
    assert as_text == parse_stream_frame(nxt, 6)  # the very next id: the record itself
    assert refused == [None, None, None]
    letters = list(read_dead_letters(tmp_path / "dead.jsonl"))
    reasons = [letter.reason for letter in letters]
    expected = [str(parse_error(raw)) for raw in (empty_side, id_as_text, b"{not json")]
    assert [letter.raw for letter in letters] == [empty_side, id_as_text, b"{not json"]
    assert reasons == expected
    assert feed.stats.frames_received == 5 and feed.stats.frames_dead_lettered == 3
