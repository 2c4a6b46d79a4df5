"""Each bad bulk file the simulator can serve, taken down the real path: download → raw →
bronze → silver. A bad file is refused in one line naming it, and nothing is stored or lost."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from streaming.simulator.server import SimulatorThread
from streaming.simulator.synthetic import SyntheticMarket
from tests.bulk_faults import break_day, bulk_simulator, land_day, served_then_cleared
from trading_assets.lib.lakehouse.bronze import TOO_FEW_FIELDS, TOO_MANY_FIELDS
from trading_assets.lib.lakehouse.bulk import (
    ChecksumMismatchError,
    raw_uri_for,
    verify_stored,
)
from trading_assets.lib.lakehouse.bulk_checks import BadBulkFileError, BulkFileProblem
from trading_assets.lib.lakehouse.bulk_replacement import BulkWouldDropTradesError
from trading_assets.lib.lakehouse.landing import live_source
from trading_assets.lib.lakehouse.pipeline import (
    Lakehouse,
    fetch_raw,
    load_bronze,
    refine_silver,
)
from trading_assets.lib.lakehouse.schemas import BRONZE_TRADES_TABLE, QUARANTINE_TABLE
from trading_assets.lib.lakehouse.tables import open_catalog, read_partition

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the lakehouse's: Binance spot's SYMBOL
DAY = dt.date(2024, 3, 1)
SEED = 11
TRADES_PER_DAY = 2_000
MARKET = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY)


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    with bulk_simulator(SYMBOL, SEED, TRADES_PER_DAY) as sim:
        yield sim


@pytest.fixture
def sim(simulator: SimulatorThread) -> Iterator[str]:
    yield from served_then_cleared(simulator)


@pytest.fixture
def lake(tmp_path: Path) -> Lakehouse:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    properties = {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db"}
    catalog = open_catalog("trading", {**properties, "warehouse": warehouse.as_uri()})
    return Lakehouse(catalog, f"{warehouse.as_uri()}/raw")


def stored(lake: Lakehouse) -> list[bool]:
    """Whether the raw zip, its CHECKSUM and its .EMPTY marker are stored."""
    raw_uri = raw_uri_for(lake.raw_root, SYMBOL, DAY)
    return [lake.io.new_input(f"{raw_uri}{end}").exists() for end in ("", ".CHECKSUM", ".EMPTY")]


def served_url(sim: str) -> str:
    return f"{sim}/data/spot/daily/trades/{SYMBOL}/{SYMBOL}-trades-{DAY.isoformat()}.zip"


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("zero_bytes", BulkFileProblem.ZERO_BYTES),
        ("truncated", BulkFileProblem.TRUNCATED),
        ("corrupt", BulkFileProblem.CORRUPT),
        ("not_a_zip", BulkFileProblem.NOT_A_ZIP),
        ("wrong_member", BulkFileProblem.WRONG_MEMBER),
        ("two_members", BulkFileProblem.WRONG_MEMBER),
        ("not_trades", BulkFileProblem.NOT_TRADES),
        ("empty_csv", BulkFileProblem.EMPTY_DAY),
    ],
)
def test_a_bad_file_is_refused_naming_its_url_and_nothing_is_stored(sim, lake, fault, problem):
    break_day(sim, SYMBOL, DAY, fault)

    with pytest.raises(BadBulkFileError) as refused:
        fetch_raw(lake, sim, INSTRUMENT, DAY)

    assert refused.value.problem is problem
    assert str(refused.value).startswith(f"{served_url(sim)}: ")
    assert stored(lake) == [False, False, False]


def test_a_checksum_that_matches_nothing_stores_nothing(sim, lake):
    break_day(sim, SYMBOL, DAY, "bad_checksum")

    with pytest.raises(ChecksumMismatchError, match=served_url(sim)):
        fetch_raw(lake, sim, INSTRUMENT, DAY)

    assert stored(lake) == [False, False, False]


def test_a_bad_file_leaves_the_good_copy_already_stored_untouched(sim, lake):
    good = fetch_raw(lake, sim, INSTRUMENT, DAY)
    break_day(sim, SYMBOL, DAY, "truncated")

    with pytest.raises(BadBulkFileError, match="cut short"):
        fetch_raw(lake, sim, INSTRUMENT, DAY)

    assert verify_stored(lake.io, good.raw_uri) == good.sha256
    assert load_bronze(lake, INSTRUMENT, DAY).write.rows == MARKET.trade_count(SYMBOL, DAY)


def test_a_day_the_venue_marks_empty_is_taken_as_an_empty_partition(sim, lake):
    break_day(sim, SYMBOL, DAY, "empty_day")

    raw = fetch_raw(lake, sim, INSTRUMENT, DAY)
    bronze = load_bronze(lake, INSTRUMENT, DAY)
    silver = refine_silver(lake, INSTRUMENT, DAY)

    assert (raw.rows, bronze.write.rows, silver.silver.rows) == (0, 0, 0)
    assert stored(lake) == [True, True, True]


def test_an_empty_zip_stored_without_the_marker_is_refused_by_bronze(sim, lake):
    break_day(sim, SYMBOL, DAY, "empty_day")
    raw = fetch_raw(lake, sim, INSTRUMENT, DAY)
    lake.io.delete(f"{raw.raw_uri}.EMPTY")  # as a copy stored before empty days were checked

    with pytest.raises(BadBulkFileError, match="does not mark the day empty") as refused:
        load_bronze(lake, INSTRUMENT, DAY)

    assert refused.value.file == raw.raw_uri


def test_a_damaged_zip_stored_earlier_is_refused_by_bronze_naming_it(sim, lake):
    raw = fetch_raw(lake, sim, INSTRUMENT, DAY)
    payload = Path(raw.raw_uri.removeprefix("file://")).read_bytes()[:-200]
    with lake.io.new_output(raw.raw_uri).create(overwrite=True) as out:
        out.write(payload)
    with lake.io.new_output(f"{raw.raw_uri}.CHECKSUM").create(overwrite=True) as out:
        out.write(f"{hashlib.sha256(payload).hexdigest()}  {raw.file_name}\n".encode())

    with pytest.raises(BadBulkFileError, match="cut short") as refused:
        load_bronze(lake, INSTRUMENT, DAY)

    assert refused.value.file == raw.raw_uri


@pytest.mark.parametrize(
    ("fault", "line", "reason"),
    [("extra_fields", 3, TOO_MANY_FIELDS), ("missing_fields", 1_000, TOO_FEW_FIELDS)],
)
def test_a_malformed_row_is_quarantined_at_its_line_with_its_reason(sim, lake, fault, line, reason):
    break_day(sim, SYMBOL, DAY, fault, line=line)
    trades = MARKET.trade_count(SYMBOL, DAY)

    fetch_raw(lake, sim, INSTRUMENT, DAY)
    bronze = load_bronze(lake, INSTRUMENT, DAY)
    silver = refine_silver(lake, INSTRUMENT, DAY)

    assert (bronze.write.rows, silver.silver.rows, silver.quarantine.rows) == (
        trades,
        trades - 1,
        1,
    )
    quarantined = read_partition(lake.table(QUARANTINE_TABLE), DAY, INSTRUMENT)
    assert quarantined["line_no"].to_list() == [line]
    assert reason in quarantined["reason"].item().split(";")


def test_a_shorter_bulk_day_never_replaces_the_live_trades_it_lacks(sim, lake, tmp_path):
    landing = tmp_path / "landing"
    landed = land_day(landing, MARKET, INSTRUMENT, DAY)
    assert load_bronze(lake, INSTRUMENT, DAY, landing).source == live_source(INSTRUMENT)
    break_day(sim, SYMBOL, DAY, "short_day")
    raw = fetch_raw(lake, sim, INSTRUMENT, DAY)

    with pytest.raises(BulkWouldDropTradesError) as refused:
        load_bronze(lake, INSTRUMENT, DAY, landing)

    message = str(refused.value)
    assert message.startswith(
        f"{raw.raw_uri}: refusing to replace bronze.trades {INSTRUMENT} {DAY}"
    )
    assert f"{landed - raw.rows:,} trades of the day this file ({raw.rows:,} rows) lacks" in message
    bronze = read_partition(lake.table(BRONZE_TRADES_TABLE), DAY, INSTRUMENT, ("source",))
    assert bronze["source"].to_list() == [live_source(INSTRUMENT)] * landed
    # Told the file is right, bronze takes it.
    replaced = load_bronze(lake, INSTRUMENT, DAY, landing, replace_missing_trades=True)
    assert replaced.write.rows == raw.rows


def test_a_bulk_day_replaces_live_rows_that_only_repeat_its_trades(sim, lake, tmp_path):
    landing = tmp_path / "landing"
    landed = land_day(landing, MARKET, INSTRUMENT, DAY, repeat_first=50)
    assert load_bronze(lake, INSTRUMENT, DAY, landing).write.rows == landed
    fetch_raw(lake, sim, INSTRUMENT, DAY)

    bronze = load_bronze(lake, INSTRUMENT, DAY, landing)

    assert bronze.write.rows == landed - 50 == MARKET.trade_count(SYMBOL, DAY)
    sources = read_partition(lake.table(BRONZE_TRADES_TABLE), DAY, INSTRUMENT, ("source",))
    assert sources.select(pl.col("source").unique()).to_series().to_list() == [bronze.source]


def test_the_fault_knob_lists_its_rules_and_refuses_one_it_does_not_know(sim):
    break_day(sim, SYMBOL, DAY, "corrupt")

    listed = httpx.get(f"{sim}/_sim/bulk_faults", timeout=10).json()
    refused = httpx.post(f"{sim}/_sim/bulk_faults", json={"fault": "gremlins"}, timeout=10)
    marker = httpx.get(f"{served_url(sim)}.EMPTY", timeout=10)

    assert listed["rules"] == [
        {"symbol": SYMBOL, "day": DAY.isoformat(), "fault": "corrupt", "line": 3}
    ]
    assert refused.status_code == 400 and "fault must be one of" in refused.json()["error"]
    assert marker.status_code == 404  # only a day marked empty has one
