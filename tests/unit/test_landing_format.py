"""Reading landed segments: whole records only, from the tail, and as bronze rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from streaming.landing import TRADES_KIND, LandingWriter
from tests.unit.test_landing_writer import DAY, trade
from trading_assets.lib.lakehouse.landing import (
    SOURCE_LIVE,
    complete_prefix_length,
    last_complete_record,
    read_landed_trades,
)
from trading_assets.lib.lakehouse.silver import split_silver

INGESTED_AT = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)


def test_complete_prefix_stops_before_a_torn_or_zero_filled_tail():
    good = b'{"trade_id":1}\n{"trade_id":2}\n'

    assert complete_prefix_length(good) == len(good)
    assert complete_prefix_length(good + b'{"trade_id":3') == len(good)
    assert complete_prefix_length(good + b"\x00" * 40 + b"\n") == len(good)
    assert complete_prefix_length(b'{"trade_') == 0


def test_last_record_is_found_when_it_is_longer_than_the_tail_window(tmp_path):
    path = tmp_path / "segment.jsonl.open"
    long_record = b'{"trade_id":2,"pad":"' + b"x" * 5000 + b'"}'
    path.write_bytes(b'{"trade_id":1}\n' + long_record + b'\n{"trade_id":3,"pa')

    assert last_complete_record(path, tail_bytes=64) == long_record


def test_landed_trades_become_bronze_rows_that_silver_accepts_unchanged(tmp_path):
    landed = [trade(i) for i in range(1, 41)]
    with LandingWriter(tmp_path, TRADES_KIND, flush_every_s=3600) as writer:
        for record in landed[:25]:
            writer.write(record)
        writer.rotate()
        for record in landed[25:]:
            writer.write(record)

    result = read_landed_trades(tmp_path, "BTCUSDT", DAY, INGESTED_AT)
    split = split_silver(result.bronze, DAY)

    assert len(result.segments) == 2
    assert result.bronze["line_no"].to_list() == list(range(1, 41))
    assert set(result.bronze["source"]) == {SOURCE_LIVE}
    assert result.bronze["source_file"].n_unique() == 2
    assert split.quarantine.is_empty()
    assert split.silver["trade_id"].to_list() == [t.trade_id for t in landed]
    exact = [Decimal(t.price) * Decimal(t.quantity) for t in landed]
    assert split.silver["quote_qty"].to_list() == exact  # tick × step fits 8 decimals here
