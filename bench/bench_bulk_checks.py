"""What checking a bulk file costs on one synthetic 2M-trade day, next to what it sits beside.

- The archive check (streamed ISA-L inflate, CRC-32, line count, row shape) runs once per
  download; its peers are the sha256 the download computes anyway and stdlib zipfile's read.
- Bronze's parse of a well-formed day (polars' reader plus the field-count guard), and of the same
  day with one malformed row (the line-by-line split that keeps it); the floor is bare
  ``pl.read_csv``.
- The replacement check when a day's live rows meet its bulk file: gathering the file's trade ids
  and finding the live trades it lacks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
import zipfile
from collections.abc import Callable

import polars as pl

from bench.bench_pipeline import pick_day

SYMBOL = "BTCUSDT"
TRADES_PER_DAY = 2_000_000


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    from streaming.simulator.synthetic import SyntheticMarket
    from trading_assets.lib.lakehouse.bronze import parse_bronze
    from trading_assets.lib.lakehouse.bulk_checks import expected_member, inspect_daily_zip
    from trading_assets.lib.lakehouse.bulk_replacement import IncomingTrades, missing_trade_ids

    market = SyntheticMarket(trades_per_day=TRADES_PER_DAY)
    day = pick_day(market, SYMBOL, TRADES_PER_DAY)
    payload = market.day_trades_csv_zip(SYMBOL, day)
    member = expected_member(f"{SYMBOL}-trades-{day.isoformat()}.zip")
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        csv = archive.read(member)
    lines = csv.split(b"\n", 4)
    one_bad_row = b"\n".join([*lines[:3], lines[3] + b",1", lines[4]])
    now = dt.datetime.now(dt.UTC)

    def stdlib_read() -> None:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive, archive.open(member) as data:
            while data.read(1 << 20):
                pass

    def parse(data: bytes) -> pl.DataFrame:
        return parse_bronze(data, day, SYMBOL, member, now)

    bronze = parse(csv)
    incoming = IncomingTrades(day)
    rows = [
        ("sha256 of the zip (peer)", timed(lambda: hashlib.sha256(payload).hexdigest())),
        ("zipfile streamed read (peer)", timed(stdlib_read)),
        ("archive check", timed(lambda: inspect_daily_zip(io.BytesIO(payload), member, "b"))),
        ("floor: pl.read_csv", timed(lambda: pl.read_csv(csv, has_header=False))),
        ("bronze parse, well-formed", timed(lambda: parse(csv))),
        ("bronze parse, one bad row", timed(lambda: parse(one_bad_row))),
        ("trade ids of the file", timed(lambda: incoming.add(bronze))),
        ("live trades it lacks", timed(lambda: missing_trade_ids(bronze, incoming.trade_ids, day))),
    ]
    size = f"zip {len(payload) / 1e6:.1f} MB, CSV {len(csv) / 1e6:.1f} MB"
    print(f"{SYMBOL} {day}: {bronze.height:,} trades, {size}")
    print(f"{'step':<34}{'seconds':>10}")
    for name, seconds in rows:
        print(f"{name:<34}{seconds:>10.3f}")


if __name__ == "__main__":
    main()
