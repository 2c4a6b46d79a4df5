"""A small bulk day with every awkward case for chunked processing, and a day's run through
the pipeline's stages on a lakehouse whose chunk size is chosen (see test_lakehouse_chunks)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import zipfile
from decimal import Decimal
from pathlib import Path

import polars as pl

from trading_assets.lib.feature_store.gold import build_gold_features
from trading_assets.lib.lakehouse import pipeline
from trading_assets.lib.lakehouse.bulk import raw_uri_for
from trading_assets.lib.lakehouse.schemas import (
    BARS_1M_TABLE,
    BARS_1S_TABLE,
    BRONZE_TRADES_TABLE,
    QUARANTINE_TABLE,
    SILVER_TRADES_TABLE,
    TableDef,
)
from trading_assets.lib.lakehouse.tables import open_catalog, read_partition

DAY = dt.date(2024, 3, 1)
INSTRUMENT = "BINANCE:BTCUSDT"
SYMBOL = "BTCUSDT"  # Binance's own: the bulk file's name and its raw path
START_MS = 1_709_251_200_000  # 2024-03-01 00:00:00 UTC
TINY = 7
WHOLE = 10**9
KEYS = (  # each table and the key its rows are compared in
    (BRONZE_TRADES_TABLE, "line_no"),
    (SILVER_TRADES_TABLE, "trade_id"),
    (QUARANTINE_TABLE, "line_no"),
    (BARS_1S_TABLE, "bar_start"),
    (BARS_1M_TABLE, "bar_start"),
)
NOW = dt.datetime(2024, 3, 2, 3, 30, tzinfo=dt.UTC)


def trade_line(trade_id: object, ms: int, rng: random.Random) -> str:
    price = Decimal(rng.randrange(10_000_000, 10_100_000)) / 100_000
    qty = Decimal(rng.randrange(1, 50_000)) / 100_000
    maker = rng.choice(["True", "False"])
    quote = (price * qty).quantize(Decimal("0.00000001"))
    return f"{trade_id},{price},{qty},{quote},{ms},{maker},True"


def awkward_day_csv(lines: int = 320) -> bytes:
    """Twenty trades a second, in id order, with the defects placed against chunks of 7 lines
    (chunk k holds lines 7k+1 .. 7k+7); the first ``lines`` lines of it."""
    rng = random.Random(16)
    rows = [trade_line(1000 + n, START_MS + n * 50, rng) for n in range(320)]
    rows[9] = trade_line(1002, START_MS + 9 * 50, rng)  # line 10 repeats line 3 (chunk 1)
    rows[29] = trade_line(1028, START_MS + 29 * 50, rng)  # line 30 repeats line 29 (same chunk)
    rows[49] = "abc," + rows[49].split(",", 1)[1]  # line 50 opens a chunk and looks like a header
    rows[59] = f"1500,-1,1,1,{START_MS + 59 * 50},True,True"  # a rejected first copy of 1500 ...
    rows[69] = trade_line(1500, START_MS + 69 * 50, rng)  # ... whose valid copy is kept
    rows[79] = trade_line(1079, START_MS - 1_000, rng)  # the day before
    rows[89] = trade_line(1005, START_MS + 89 * 50, rng)  # an old id again, chunks later
    rows[90] = trade_line(999, START_MS + 90 * 50, rng)  # an id below every other: out of order
    rows[99] = "1099,100.0"  # too few fields
    rows[119] = ""  # a blank line
    rows[140] = trade_line(1140, START_MS + 100 * 50, rng)  # time steps back
    return ("\n".join(rows[:lines]) + "\n").encode()


def zipped(csv: bytes, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        archive.writestr(f"{SYMBOL}-trades-{DAY}.csv", csv)
    return buffer.getvalue()


def lakehouse(
    root: Path,
    chunk_rows: int,
    payload: bytes,
    warehouse: str | None = None,
    properties: dict[str, str] | None = None,
) -> pipeline.Lakehouse:
    """A real sqlite catalog under ``root`` whose warehouse (a folder under ``root`` unless
    given, e.g. ``s3://...``) holds the day's zip and CHECKSUM in its raw area."""
    if warehouse is None:
        (root / "warehouse").mkdir(parents=True)
        warehouse = (root / "warehouse").as_uri()
    else:
        root.mkdir(parents=True)
    catalog = open_catalog(
        "test",
        {"type": "sql", "uri": f"sqlite:///{root}/catalog.db", "warehouse": warehouse}
        | (properties or {}),
    )
    lake = pipeline.Lakehouse(catalog, f"{warehouse}/raw", chunk_rows=chunk_rows)
    raw_uri = raw_uri_for(lake.raw_root, SYMBOL, DAY)
    digest = hashlib.sha256(payload).hexdigest()
    checksum = f"{digest}  {raw_uri.rsplit('/', 1)[-1]}\n".encode()
    for uri, content in ((raw_uri, payload), (f"{raw_uri}.CHECKSUM", checksum)):
        with lake.io.new_output(uri).create(overwrite=True) as target:
            target.write(content)
    return lake


def run_day(lake: pipeline.Lakehouse) -> dict[str, object]:
    raw_uri = raw_uri_for(lake.raw_root, SYMBOL, DAY)
    bronze = pipeline.stage_bulk_bronze(lake, INSTRUMENT, DAY, raw_uri).commit()
    silver = pipeline.refine_silver(lake, INSTRUMENT, DAY)
    bars_1s = pipeline.build_bars_1s(lake, INSTRUMENT, DAY)
    bars_1m = pipeline.build_bars_1m(lake, INSTRUMENT, DAY)
    build_gold_features(lake, INSTRUMENT, DAY)
    return {
        "bronze_events": (bronze.first_event, bronze.last_event),
        "silver_events": (silver.silver.first_event, silver.silver.last_event),
        "reasons": silver.reasons,
        "bars_1s_events": (bars_1s.write.first_event, bars_1s.write.last_event),
        "bars_1m_rows": bars_1m.write.rows,
        "reconciliation": pipeline.reconcile(lake, INSTRUMENT, DAY),
        "raw_events": pipeline.raw_event_range(lake, raw_uri),
    }


def table_rows(lake: pipeline.Lakehouse, table: TableDef, key: str) -> pl.DataFrame:
    frame = read_partition(lake.table(table), DAY, INSTRUMENT)
    return frame.drop("ingested_at", strict=False).sort(key)
