"""A real recorded session through the sidecar, then through landing → silver → 1 s bars → batch
features: the live feature rows the sidecar pushed equal the batch features within 1e-9."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.recordings import read_recording
from streaming.venues.binance import BookTicker, Trade, parse_stream_frame
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG, SERVICES, TRAINING_SERVICE
from trading_assets.lib.features import compute_features, feature_names
from trading_assets.lib.instruments import path_name
from trading_assets.lib.lakehouse.pipeline import (
    Lakehouse,
    build_bars_1s,
    load_bronze,
    read_partition,
    refine_silver,
)
from trading_assets.lib.lakehouse.schemas import BARS_1S_TABLE
from trading_assets.resources import IcebergCatalogResource

RECORDING = "btcusdt_20240808.txt.gz"
SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the sidecar's, Binance spot's SYMBOL
GROUPS = SERVICES[TRAINING_SERVICE]
TOLERANCE = 1e-9


def replay(sidecar: Sidecar, path: Path) -> list:
    """Every recorded stream frame, parsed, handed to the sidecar as its feed would."""
    rows = []
    for frame in read_recording(path):
        if frame.is_rest:
            continue
        record = parse_stream_frame(frame.payload, frame.receive_ns)
        if isinstance(record, Trade | BookTicker):
            rows += sidecar.on_record(record)
    return rows


def batch_features_from_landing(lake: Lakehouse, landing: Path) -> pl.DataFrame:
    """landing → bronze → silver → bars_1s for every landed day, then the batch features."""
    days = sorted(
        dt.date.fromisoformat(p.name)
        for p in (landing / "trades" / path_name(INSTRUMENT)).iterdir()
    )
    for day in days:
        load_bronze(lake, INSTRUMENT, day, landing_root=landing)
        refine_silver(lake, INSTRUMENT, day)
        build_bars_1s(lake, INSTRUMENT, day)
    bars = pl.concat([read_partition(lake.table(BARS_1S_TABLE), day, INSTRUMENT) for day in days])
    return compute_features(bars.sort("bar_start"), FEATURE_CONFIG, groups=GROUPS)


def test_live_features_of_a_recorded_session_equal_batch_features_from_silver(
    tmp_path, shared_data: Path
):
    config = SidecarConfig(
        instruments=(INSTRUMENT,),
        ws_base_url="ws://unused",
        rest_base_url="http://unused",
        data_root=tmp_path,
        tracking_uri=None,
    )
    sidecar = Sidecar(config)
    live_rows = replay(sidecar, shared_data / "binance" / "ws" / RECORDING)
    live_rows += sidecar.trackers[INSTRUMENT].live.flush()
    for writer in sidecar.writers.values():
        writer.close()
    sidecar.online_writer.close()
    lake = IcebergCatalogResource.local(tmp_path / "iceberg").lakehouse()

    batch = batch_features_from_landing(lake, config.landing_root)

    names = feature_names(FEATURE_CONFIG, GROUPS)
    by_time = {
        int(row["event_timestamp"].timestamp() * 1_000_000): row
        for row in batch.iter_rows(named=True)
    }
    assert len(live_rows) > 300  # one per second of the ~6-minute session
    compared = dict.fromkeys(names, 0)
    for row in live_rows:
        expected = by_time[row.event_timestamp_us]
        for name in names:
            got, want = row.values[name], expected[name]
            assert (got is None) == (want is None or math.isnan(want)), (name, row)
            if got is not None:
                assert got == pytest.approx(want, abs=TOLERANCE, rel=0), name
                compared[name] += 1
    # A 6-minute session fills the 10 s and 60 s windows (the longer ones stay partly cold).
    short = [name for name in names if name.endswith(("_10s", "_60s"))]
    assert short and all(compared[name] > 0.8 * len(live_rows) for name in short), compared
