"""The simulator's bulk zips are the same bytes at every request: the CHECKSUM a client fetches
first must match the zip it downloads a moment later, and a day evicted from the cache and made
again must not change."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest

from streaming.simulator.binance.bulk_faults import BulkFault, BulkFaultRule, broken_zip
from streaming.simulator.synthetic import SyntheticMarket

DAY = dt.date(2024, 3, 1)
MIDNIGHT = (2024, 3, 1, 0, 0, 0)
# The faults that make a zip of their own (the others serve no zip, or the day's good one).
ZIPPED = [f for f in BulkFault if f not in {BulkFault.ZERO_BYTES, BulkFault.TRUNCATED,
          BulkFault.CORRUPT, BulkFault.NOT_A_ZIP, BulkFault.BAD_CHECKSUM}]  # fmt: skip


def member_times(payload: bytes) -> set[tuple[int, ...]]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {info.date_time for info in archive.infolist()}


def test_a_days_zip_made_again_has_the_same_bytes_and_the_days_time():
    first = SyntheticMarket(seed=3, trades_per_day=2_000).day_trades_csv_zip("BTCUSDT", DAY)
    again = SyntheticMarket(seed=3, trades_per_day=2_000).day_trades_csv_zip("BTCUSDT", DAY)

    assert first == again
    assert member_times(first) == {MIDNIGHT}  # not the time it was made


@pytest.mark.parametrize("fault", ZIPPED)
def test_a_broken_zip_has_the_same_bytes_at_every_request(fault):
    market = SyntheticMarket(seed=3, trades_per_day=2_000)
    good = market.day_trades_csv_zip("BTCUSDT", DAY)
    rule = BulkFaultRule("BTCUSDT", DAY, fault)

    def agg() -> bytes:
        return market.day_agg_trades_csv_zip("BTCUSDT", DAY)

    broken = broken_zip(good, rule, agg)

    assert broken != good
    assert member_times(broken) == {MIDNIGHT}
    assert broken_zip(good, rule, agg) == broken
