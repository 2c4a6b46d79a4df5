"""One sidecar computing an instrument's cross group live against its reference at another venue:
the rows it pushes online equal the batch definition on the very records it received, and the
online store serves them under the instrument."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import polars as pl
import pytest

from streaming.records import Trade
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import applied_sidecar, venues_config
from trading_assets.lib.features import CROSS, FeatureRow, trades_frame
from trading_assets.lib.features.cross_venue import compute_cross_features, cross_feature_names
from trading_assets.lib.lakehouse.bars import bars_from_trades

pytestmark = [pytest.mark.integration, pytest.mark.venues, pytest.mark.timeout(150)]
REFERENCE, OWN = "BINANCE:BTCUSDT", "COINBASE:BTC-USD"
MIN_ROWS = 15  # warm cross rows of the own instrument (past the 10 s window)


def same_float(a: float | None, b: float | None) -> bool:
    """The same value to the last bit, None and NaN each equal to themselves."""
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


async def test_the_sidecar_pushes_the_cross_group_as_the_batch_defines_it(tmp_path: Path) -> None:
    # Arrange: a sidecar whose every received record and every submitted row is kept
    with run_simulator_in_thread(symbols=["BTCUSDT"], seed=9, trades_per_day=3_000_000) as sim:
        config = venues_config(
            sim, (REFERENCE, OWN), tmp_path / "data", cross_references={OWN: REFERENCE}
        )
        sidecar = applied_sidecar(config)
        store = sidecar.store
        received: list[object] = []
        pushed: list[FeatureRow] = []
        on_record, submit = sidecar.on_record, sidecar.online_writer.submit

        def keep_record(record: object) -> list[FeatureRow]:
            received.append(record)
            return on_record(record)

        def keep_row(row: FeatureRow) -> None:
            pushed.append(row)
            submit(row)

        sidecar.on_record = keep_record  # type: ignore[method-assign]
        sidecar.online_writer.submit = keep_row  # type: ignore[method-assign]

        def cross_rows() -> list[FeatureRow]:
            return [r for r in pushed if r.symbol == OWN and "lead_ret_10s" in r.values]

        # Act: run until the own instrument has warm cross rows
        task = asyncio.create_task(sidecar.run())
        try:
            async with asyncio.timeout(100):
                while sum(r.values["lead_ret_10s"] is not None for r in cross_rows()) < MIN_ROWS:
                    await asyncio.sleep(0.25)
        finally:
            sidecar.stop()
            await asyncio.wait_for(task, 30)

    # Assert: the live rows are the batch features of the same trades, to the last bit
    live = cross_rows()
    trades = [r for r in received if type(r) is Trade]

    def bars(instrument: str) -> pl.DataFrame:
        mine = [t for t in trades if t.instrument == instrument]
        return bars_from_trades(trades_frame(instrument, mine))

    batch = compute_cross_features(bars(OWN), bars(REFERENCE), None, bar_s=1)
    by_time = {row["event_timestamp"].timestamp(): row for row in batch.iter_rows(named=True)}
    compared = 0
    for row in live:
        expected = by_time.get(row.event_timestamp_us / 1e6)
        if expected is None:  # closed by the clock after the last trade: no batch bar yet
            continue
        compared += 1
        for name in cross_feature_names():
            a, b = row.values[name], expected[name]
            assert same_float(a, b), (name, row.event_timestamp_us, a, b)
    assert compared >= MIN_ROWS
    assert {"basis_bps", "lead_ret_10s", "xflow_imb_10s"} <= set(live[-1].values)
    # The online store serves the own instrument's newest cross row
    newest = max(live, key=lambda r: r.event_timestamp_us)
    online = store.get_online_features(
        features=[f"{CROSS}:{name}" for name in ("basis_bps", "lead_ret_10s")],
        entity_rows=[{"instrument": OWN}],
    ).to_dict()
    assert online["lead_ret_10s"] == [newest.values["lead_ret_10s"]]
    assert online["basis_bps"] == [newest.values["basis_bps"]]
