"""Landing shipped to a real S3 server (SeaweedFS), as production runs it: the sidecar's sealed
segments go up once each, even when the shipper is killed mid-way, and the Dagster side's ingest
and live metrics read them from ``s3://`` alone."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from streaming.landing import PREDICTIONS_KIND, LandingWriter
from streaming.landing.shipper import Shipper, ShipperState, ledger_path
from tests.dagster.live_pickup import Sensor
from tests.landing_s3 import (
    land_in_segments,
    objects_under,
    sealed_files,
    synthetic_trades,
    use_s3_landing,
)
from trading_assets.defs.lakehouse.assets import bronze_trades, silver_trades
from trading_assets.lib.instruments import instrument_id, path_name
from trading_assets.lib.lakehouse.pipeline import read_silver
from trading_assets.lib.lakehouse.schemas import BRONZE_TRADES_TABLE
from trading_assets.lib.lakehouse.tables import read_partition
from trading_assets.lib.models.live_metrics import read_predictions
from trading_assets.lib.settings import load_settings
from trading_assets.resources import IcebergCatalogResource

pytestmark = pytest.mark.prod

DAY = dt.date(2024, 3, 1)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
TRADES_PER_DAY = 20_000
PER_SEGMENT = 100  # about 200 segments per symbol: seconds of uploads to interrupt
KILL_AFTER = 60  # segments recorded before the shipper is killed


@pytest.fixture
def landing_uri(s3_server, monkeypatch, tmp_path) -> str:
    return use_s3_landing(s3_server, monkeypatch, tmp_path)


def shipper_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "streaming.landing.shipper", *options]


def recorded(ledger: Path) -> int:
    """Segments the ledger holds (whole lines)."""
    return ledger.read_bytes().count(b"\n") if ledger.exists() else 0


def kill_midway(ledger: Path, at_least: int) -> None:
    """Start a shipper and SIGKILL it once ``at_least`` segments are recorded."""
    shipper = subprocess.Popen(shipper_command(), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while recorded(ledger) < at_least:
            assert shipper.poll() is None, f"the shipper exited with {shipper.returncode}"
            assert time.monotonic() < deadline, "the shipper recorded too little in 120 s"
            time.sleep(0.005)
    finally:
        shipper.send_signal(signal.SIGKILL)
        shipper.wait()


def ship_until_done(expected: int) -> tuple[ShipperState, int]:
    """Restart the shipper, read its reports until ``expected`` segments are shipped with none
    waiting, then stop it (SIGTERM); its last state and exit status."""
    shipper = subprocess.Popen(shipper_command(), stdout=subprocess.PIPE, text=True)
    assert shipper.stdout is not None
    state = ShipperState()
    try:
        for line in shipper.stdout:
            state = ShipperState.from_json(line)
            if state.shipped == expected and state.backlog == 0:
                break
    finally:
        shipper.send_signal(signal.SIGTERM)
        code = shipper.wait(60)
    return state, code


def ingest(request: dg.RunRequest, lake_root: Path) -> None:
    """What the requested run does for bronze and silver, from the location in its config."""
    result = dg.materialize(
        [bronze_trades, silver_trades],
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
        resources={"iceberg": IcebergCatalogResource.local(lake_root)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success


def test_a_killed_shipper_resumes_and_every_landed_trade_reaches_silver_once(
    landing_uri, s3_server, tmp_path
):
    # Arrange: a day of the simulator's trades landed in sealed segments, two symbols
    landing = load_settings().landing_dir
    trades = {symbol: synthetic_trades(symbol, DAY, 7, TRADES_PER_DAY) for symbol in SYMBOLS}
    segments = sum(land_in_segments(landing, t, PER_SEGMENT) for t in trades.values())
    sealed = sealed_files(landing)
    ledger = ledger_path(landing, landing_uri)

    # Act: kill the shipper mid-way through the uploads, then start it again
    kill_midway(ledger, KILL_AFTER)
    at_kill = objects_under(s3_server, landing_uri)
    state, code = ship_until_done(segments)
    stored = objects_under(s3_server, landing_uri)

    # Assert: every segment is on S3 once, byte for byte, and the ledger lists each once
    assert segments == len(sealed) >= 300
    assert KILL_AFTER <= len(at_kill) < segments
    assert code == 0 and state.errors == 0 and state.last_error is None
    assert stored == sealed
    lines = ledger.read_text().splitlines()
    assert len(lines) == len(set(lines)) == segments

    # Act: the sensor lists s3://, and its run rebuilds bronze and silver from there
    sensor = Sensor(dg.DagsterInstance.ephemeral(), landing_uri)
    (request,) = sensor.tick().run_requests or []
    ingest(request, tmp_path / "lake")

    # Assert: each symbol's trades once, in order, ids contiguous
    lake = IcebergCatalogResource.local(tmp_path / "lake").lakehouse()
    assert request.run_config["ops"]["bronze_trades"]["config"]["landing_root"] == landing_uri
    for symbol, landed in trades.items():
        instrument = instrument_id("BINANCE", symbol)
        silver = read_silver(lake, instrument, DAY)
        bronze = read_partition(lake.table(BRONZE_TRADES_TABLE), DAY, instrument)
        ids = silver["trade_id"].to_list()
        assert bronze.height == silver.height == len(landed)
        assert silver["trade_id"].n_unique() == silver.height
        assert ids == list(range(landed[0].trade_id, landed[0].trade_id + len(landed)))
        assert ids == [t.trade_id for t in landed]
        assert bronze["source_file"].str.starts_with(f"trades/{path_name(instrument)}/").all()


def test_live_metrics_read_the_same_predictions_from_s3_as_from_the_landing_folder(
    landing_uri, tmp_path
):
    # Arrange: predictions of two symbols in sealed segments, shipped
    landing = load_settings().landing_dir
    start_ns = int(dt.datetime(2024, 3, 1, 23, 59, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    with LandingWriter(landing, PREDICTIONS_KIND, time_fields=("timestamp",)) as writer:
        for second in range(120):  # across midnight: two day folders
            for symbol in SYMBOLS:
                instrument = instrument_id("BINANCE", symbol)
                writer.write(prediction(instrument, start_ns + second * 1_000_000_000, second))
            if second % 25 == 24:
                writer.rotate()
    with Shipper(landing, landing_uri) as shipper:
        shipper.ship_backlog()

    # Act
    window = (start_ns + 10 * 1_000_000_000, start_ns + 110 * 1_000_000_000)
    from_s3 = read_predictions(landing_uri, *window)
    from_folder = read_predictions(landing, *window)
    only_eth = read_predictions(landing_uri, *window, symbols=["binance:ethusdt"])

    # Assert
    assert from_s3.height == 200
    assert from_s3.sort("timestamp", "instrument").equals(
        from_folder.sort("timestamp", "instrument")
    )
    assert set(only_eth["instrument"]) == {"BINANCE:ETHUSDT"} and only_eth.height == 100


def prediction(symbol: str, timestamp: int, second: int) -> dict:
    """A landed prediction as the sidecar logs it (the fields live metrics read): its
    ``symbol`` is the instrument id."""
    return {
        "symbol": symbol, "timestamp": timestamp, "model_version": "3", "role": "champion",
        "predicted_return": (second % 7 - 3) / 1e4, "latency_ms": 1.5, "fallback_level": 1,
        "reason": "",
    }  # fmt: skip
