"""Reading landed segments: whole records only, from the tail, and as bronze rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from streaming.landing import TRADES_KIND, LandingWriter
from streaming.venues.binance import Trade as SidecarTrade
from tests.unit.test_landing_writer import DAY, trade
from trading_assets.lib.lakehouse.landing import (
    SEALED_SUFFIX,
    complete_prefix_length,
    last_complete_record,
    live_source,
    partition_dir,
    read_landed_trades,
)
from trading_assets.lib.lakehouse.records import Trade
from trading_assets.lib.lakehouse.silver import split_silver

INGESTED_AT = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
INSTRUMENT = "BINANCE:BTCUSDT"
# One trade as landed segments hold it: the keys are the record's field names, in its order.
LANDED_LINE = (
    b'{"symbol":"BTCUSDT","trade_id":7,"price":"61000.10","quantity":"0.00200000",'
    b'"is_buyer_maker":true,"trade_ns":1709251200123456789,"event_ns":1709251200124000000,'
    b'"receive_ns":1709251200125000000}'
)


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

    result = read_landed_trades(tmp_path, INSTRUMENT, DAY, INGESTED_AT)
    split = split_silver(result.bronze, DAY)

    assert len(result.segments) == 2
    assert result.bronze["line_no"].to_list() == list(range(1, 41))
    assert set(result.bronze["source"]) == {live_source(INSTRUMENT)} == {"binance.live.trades"}
    assert result.bronze["source_file"].n_unique() == 2
    assert split.quarantine.is_empty()
    assert split.silver["trade_id"].to_list() == [t.trade_id for t in landed]
    exact = [Decimal(t.price) * Decimal(t.quantity) for t in landed]
    assert split.silver["quote_qty"].to_list() == exact  # tick × step fits 8 decimals here


def test_a_landed_line_decodes_as_the_one_trade_record_and_reads_back_as_bronze(tmp_path):
    # Arrange: a sealed segment holding a line as earlier sidecars landed it
    folder = partition_dir(tmp_path, TRADES_KIND, INSTRUMENT, DAY)
    folder.mkdir(parents=True)
    (folder / f"0001{SEALED_SUFFIX}").write_bytes(LANDED_LINE + b"\n")

    # Act
    record = msgspec.json.decode(LANDED_LINE, type=Trade)
    bronze = read_landed_trades(tmp_path, INSTRUMENT, DAY, INGESTED_AT).bronze

    # Assert: the sidecar's record is lib's, it writes the line back byte for byte, and bronze
    # reads its values
    assert SidecarTrade is Trade
    assert msgspec.json.encode(record) == LANDED_LINE
    row = bronze.row(0, named=True)
    assert (row["id"], row["price"], row["qty"]) == ("7", "61000.10", "0.00200000")
    assert (row["time"], row["is_buyer_maker"]) == ("1709251200123456", "True")
