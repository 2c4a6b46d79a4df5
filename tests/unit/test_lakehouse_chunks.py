"""A day processed in small chunks gives exactly the results of the day processed whole.

A small bulk day with the awkward cases (duplicate trade ids across chunks, a rejected first copy
with a valid later one, ids out of order, malformed and blank lines, a line that looks like a
header at a chunk's start, twenty trades a second so chunk edges fall inside seconds) goes from
the stored zip to gold features twice, on two real sqlite catalogs: once in chunks of a few rows,
once as one chunk. Every table must come out the same, row for row, and also the same as the
whole-frame functions give for the whole file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import zipfile
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.chunked_days import (
    DAY,
    INSTRUMENT,
    KEYS,
    NOW,
    SYMBOL,
    TINY,
    WHOLE,
    awkward_day_csv,
    lakehouse,
    run_day,
    table_rows,
    zipped,
)
from trading_assets.lib.feature_store.gold import read_gold
from trading_assets.lib.lakehouse import pipeline, quality
from trading_assets.lib.lakehouse.bars import bars_from_trades, rollup_bars
from trading_assets.lib.lakehouse.bronze import count_csv_rows, parse_bronze
from trading_assets.lib.lakehouse.bulk import raw_uri_for
from trading_assets.lib.lakehouse.bulk_checks import BadBulkFileError
from trading_assets.lib.lakehouse.chunks import (
    bronze_chunks,
    count_csv_rows_streamed,
    line_chunks,
    open_csv_member,
)
from trading_assets.lib.lakehouse.schemas import (
    BARS_1S_TABLE,
    BRONZE_TRADES_TABLE,
    QUARANTINE_TABLE,
    SILVER_TRADES_TABLE,
    TableDef,
)
from trading_assets.lib.lakehouse.silver import SilverRefiner, split_silver
from trading_assets.lib.lakehouse.tables import (
    partition_filter,
    read_partition_chunks,
    replace_partition,
)

pytestmark = pytest.mark.faults


def file_rows(lake: pipeline.Lakehouse, table: TableDef) -> list[int]:
    scan = lake.table(table).refresh().scan(partition_filter(DAY, INSTRUMENT))
    return [task.file.record_count for task in scan.plan_files()]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory):
    payload = zipped(awkward_day_csv())
    root = tmp_path_factory.mktemp("chunked")
    chunked = lakehouse(root / "chunked", TINY, payload)
    whole = lakehouse(root / "whole", WHOLE, payload)
    return chunked, run_day(chunked), whole, run_day(whole)


@pytest.mark.parametrize(("table", "key"), KEYS, ids=[t.identifier for t, _ in KEYS])
def test_every_table_is_the_same_in_tiny_chunks_as_in_one(two_runs, table, key):
    chunked, _, whole, _ = two_runs

    in_chunks, in_one = table_rows(chunked, table, key), table_rows(whole, table, key)

    assert in_one.height > 0
    assert_frame_equal(in_chunks, in_one, check_exact=True)


def test_gold_features_and_stage_reports_are_the_same(two_runs):
    chunked, chunked_report, whole, whole_report = two_runs

    assert chunked_report == whole_report
    gold = read_gold(chunked, INSTRUMENT, DAY).sort("event_timestamp")
    assert gold.height > 0
    assert_frame_equal(gold, read_gold(whole, INSTRUMENT, DAY).sort("event_timestamp"))


def test_the_chunked_day_is_what_the_whole_frame_functions_make_of_the_file(two_runs):
    chunked, report, _, _ = two_runs
    csv = awkward_day_csv()
    bronze = parse_bronze(csv, DAY, INSTRUMENT, f"{SYMBOL}-trades-{DAY}.zip", NOW)
    split = split_silver(bronze, DAY)

    assert_frame_equal(
        table_rows(chunked, BRONZE_TRADES_TABLE, "line_no"), bronze.drop("ingested_at")
    )
    assert_frame_equal(
        table_rows(chunked, SILVER_TRADES_TABLE, "trade_id"),
        split.silver.drop("ingested_at").sort("trade_id"),
    )
    assert_frame_equal(
        table_rows(chunked, QUARANTINE_TABLE, "line_no"), split.quarantine.drop("ingested_at")
    )
    assert_frame_equal(
        table_rows(chunked, BARS_1S_TABLE, "bar_start"), bars_from_trades(split.silver, "1s")
    )
    assert report["reconciliation"] == quality.Reconciliation(
        count_csv_rows(csv), bronze.height, split.silver.height, split.quarantine.height
    )
    assert report["reconciliation"].balanced


def test_the_defects_across_chunk_edges_are_judged_as_in_the_whole_file(two_runs):
    chunked, report, _, _ = two_runs
    quarantine = table_rows(chunked, QUARANTINE_TABLE, "line_no")
    silver = table_rows(chunked, SILVER_TRADES_TABLE, "trade_id")
    reasons = dict(zip(quarantine["line_no"], quarantine["reason"], strict=True))

    assert reasons[10] == reasons[30] == reasons[90] == "duplicate_trade_id"
    assert reasons[50] == "unparseable_id"  # kept as a row, not skipped as a header
    assert "nonpositive_price" in reasons[60]
    assert 1500 in silver["trade_id"].to_list()  # its first valid copy
    assert silver["trade_id"].is_unique().all()
    assert report["reasons"]["duplicate_trade_id"] == 3


def test_the_chunk_size_is_honoured(two_runs):
    chunked, _, whole, _ = two_runs

    for table in (BRONZE_TRADES_TABLE, SILVER_TRADES_TABLE):
        in_chunks, in_one = file_rows(chunked, table), file_rows(whole, table)
        assert max(in_chunks) <= TINY
        assert len(in_chunks) >= sum(in_one) // TINY
        assert len(in_one) == 1


def test_reading_a_partition_in_chunks_covers_it_once_in_key_order(tmp_path):
    lake = lakehouse(tmp_path, TINY, zipped(b""))
    table = lake.table(SILVER_TRADES_TABLE)
    silver = split_silver(
        parse_bronze(awkward_day_csv(), DAY, INSTRUMENT, "f.zip", NOW), DAY
    ).silver
    # Files written out of id order, so their id ranges overlap.
    shuffled = silver.sample(fraction=1.0, shuffle=True, seed=3)
    parts = [shuffled.slice(i, 50) for i in range(0, shuffled.height, 50)]
    replace_partition(
        table, DAY, INSTRUMENT, [pipeline.to_iceberg_arrow(p, table.schema()) for p in parts]
    )

    by_id = list(read_partition_chunks(table, DAY, INSTRUMENT, "trade_id", 25, ("trade_id",)))
    by_second = list(
        read_partition_chunks(table, DAY, INSTRUMENT, "event_time", 25, ("event_time",), align="1s")
    )

    ids = [chunk["trade_id"].sort() for chunk in by_id]
    assert pl.concat(ids).to_list() == sorted(silver["trade_id"].to_list())
    assert all(chunk.height <= 25 for chunk in by_id)
    assert all(a.max() < b.min() for a, b in itertools.pairwise(ids))  # type: ignore[operator]
    seconds = [set(chunk["event_time"].dt.truncate("1s").to_list()) for chunk in by_second]
    assert sum(len(s) for s in seconds) == len(set().union(*seconds))  # no second in two chunks
    assert sum(chunk.height for chunk in by_second) == silver.height


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("block", [1, 13, 4096])
def test_bronze_chunks_of_a_stream_equal_the_whole_file_parsed(header, block):
    csv = awkward_day_csv(60)
    if header:
        csv = b"id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n" + csv
    blocks = [csv[i : i + block] for i in range(0, len(csv), block)]

    chunks = list(bronze_chunks(blocks, DAY, INSTRUMENT, "f.zip", NOW, chunk_rows=TINY))

    assert_frame_equal(pl.concat(chunks), parse_bronze(csv, DAY, INSTRUMENT, "f.zip", NOW))
    assert len(chunks) == -(-csv.count(b"\n") // TINY)
    assert count_csv_rows_streamed(blocks) == count_csv_rows(csv)


def test_line_chunks_keep_every_byte_and_cut_only_at_line_ends():
    text = b"a\nbb\n\nccc\nd"
    pieces = list(line_chunks([text[:3], text[3:7], text[7:]], 2))

    assert pieces == [b"a\nbb\n", b"\nccc\n", b"d"]
    assert count_csv_rows_streamed([b""]) == count_csv_rows(b"") == 0


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_the_zip_member_streams_exactly_and_damage_is_named(tmp_path, compression):
    csv = awkward_day_csv(100)
    lake = lakehouse(tmp_path, TINY, zipped(csv, compression))
    raw_uri = raw_uri_for(lake.raw_root, SYMBOL, DAY)

    with open_csv_member(lake.io, raw_uri) as (member, blocks):
        assert (member, b"".join(blocks)) == (f"{SYMBOL}-trades-{DAY}.csv", csv)

    damaged = bytearray(zipped(csv, compression))
    damaged[len(damaged) // 3] ^= 0xFF
    Path(raw_uri.removeprefix("file://")).write_bytes(bytes(damaged))
    with (
        pytest.raises(BadBulkFileError, match=rf"{raw_uri}: {SYMBOL}-trades-{DAY}\.csv is"),
        open_csv_member(lake.io, raw_uri) as (_, blocks),
    ):
        b"".join(blocks)


def test_silver_refuses_chunks_out_of_line_order():
    bronze = parse_bronze(awkward_day_csv(30), DAY, INSTRUMENT, "f.zip", NOW)
    refiner = SilverRefiner(DAY)
    refiner.split(bronze.slice(10, 10))

    with pytest.raises(ValueError, match="out of line order"):
        refiner.split(bronze.slice(0, 10))


def test_quality_measures_do_not_depend_on_order_or_chunks():
    rng = random.Random(5)
    ids = [rng.randrange(0, 400) for _ in range(1_000)]
    prices = [Decimal(100) + Decimal(rng.randrange(0, 100)) / 100 for _ in ids]
    prices[500] = Decimal(150)
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    trades = pl.DataFrame(
        {
            "trade_id": list(range(1_000)),
            "price": prices,
            "event_time": [start + dt.timedelta(seconds=i) for i in range(1_000)],
        },
        schema={
            "trade_id": pl.Int64,
            "price": pl.Decimal(18, 8),
            "event_time": pl.Datetime("us", "UTC"),
        },
    )
    shuffled = trades.sample(fraction=1.0, shuffle=True, seed=1)
    repeated = pl.DataFrame({"trade_id": ids}, schema={"trade_id": pl.Int64})
    expected_extra = len(ids) - len(set(ids))

    assert quality.price_spikes(trades, chunk_rows=64) == quality.price_spikes(trades)
    assert quality.price_spikes(shuffled, chunk_rows=64) == quality.price_spikes(trades)
    assert quality.price_spikes(trades).examples[0]["trade_id"] == 500
    assert quality.duplicate_trade_ids(repeated).count == expected_extra
    span = max(ids) - min(ids) + 1
    assert quality.trade_id_gaps(repeated["trade_id"]).missing_ids == span - len(set(ids))
    assert quality.time_backwards(shuffled).count == 0


def test_bars_do_not_depend_on_where_their_trades_sit_in_memory():
    rng = random.Random(8)
    count = 30_000
    trades = pl.DataFrame(
        {
            "trade_date": [DAY] * count,
            "instrument": [INSTRUMENT] * count,
            "trade_id": list(range(count)),
            "price": [Decimal(rng.randrange(6_000_000, 6_100_000)) / 100 for _ in range(count)],
            "qty": [Decimal(rng.randrange(1, 10**8)) / 10**8 for _ in range(count)],
            "event_time": [NOW + dt.timedelta(milliseconds=37 * i) for i in range(count)],
            "is_buyer_maker": [rng.random() < 0.5 for _ in range(count)],
        },
        schema_overrides={"price": pl.Decimal(18, 8), "qty": pl.Decimal(18, 8)},
    )
    second = pl.col("event_time").dt.truncate("1s")
    cut = trades.select(second.unique().sort().get(333)).item()

    whole = bars_from_trades(trades)
    pieces = [trades.filter(second < cut), trades.filter(second >= cut)]
    in_pieces = pl.concat([bars_from_trades(piece) for piece in pieces])

    assert_frame_equal(in_pieces, whole, check_exact=True)
    minutes = rollup_bars(whole, "1m")
    assert_frame_equal(rollup_bars(whole.reverse(), "1m"), minutes, check_exact=True)
    assert_frame_equal(
        minutes.drop("notional", "vwap"),
        bars_from_trades(trades, "1m").drop("notional", "vwap"),
        check_exact=True,
    )
