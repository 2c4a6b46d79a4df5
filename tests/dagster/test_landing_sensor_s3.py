"""Live pickup from an ``s3://`` landing location, as production runs it: the sidecar's shipper
uploads sealed segments to a real S3 server (SeaweedFS), and the sensor lists them there."""

from __future__ import annotations

import dagster as dg
import pytest

from streaming.landing import TRADES_KIND, LandingWriter
from streaming.landing.shipper import Shipper
from tests.landing_s3 import use_s3_landing
from trading_assets.lib.lakehouse.landing import list_segments
from trading_assets.lib.settings import load_settings

from .live_pickup import DAY, Sensor, land, requested, trade

pytestmark = pytest.mark.prod

BTC, ETH = "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"  # the instruments of the landed trades
BTC_KEY = f"{DAY.isoformat()}|{BTC}"
ETH_KEY = f"{DAY.isoformat()}|{ETH}"


@pytest.fixture
def landing_uri(s3_server, monkeypatch, tmp_path) -> str:
    return use_s3_landing(s3_server, monkeypatch, tmp_path)


def ship(landing_uri: str) -> None:
    with Shipper(load_settings().landing_dir, landing_uri) as shipper:
        assert shipper.ship_backlog().last_error is None


def test_the_sensor_requests_runs_for_partitions_with_segments_waiting_on_s3(landing_uri):
    # Arrange: sealed segments of two instruments shipped, and one still open on the sidecar's disk
    landing = load_settings().landing_dir
    btc = land(landing, [trade(i) for i in range(1, 41)], [trade(i) for i in range(41, 61)])
    eth = land(landing, [trade(i, "ETHUSDT") for i in range(1, 31)])
    open_writer = LandingWriter(landing, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600)
    open_writer.write(trade(61))
    open_writer.flush()
    sensor = Sensor(dg.DagsterInstance.ephemeral(), landing_uri)
    nothing_shipped = sensor.tick()
    ship(landing_uri)

    # Act
    first = sensor.tick()
    again = sensor.tick()
    open_writer.close()
    ship(landing_uri)
    after_seal = sensor.tick()

    # Assert: one run for both instruments, pointed at the S3 location, each state asked once
    assert requested(nothing_shipped) == {} and requested(again) == {}
    (request,) = first.run_requests or []
    assert set(requested(first)) == {BTC_KEY, ETH_KEY}
    assert request.run_config == {
        "ops": {"bronze_trades": {"config": {"landing_root": landing_uri}}}
    }
    assert request.run_key == f"{DAY.isoformat()}|{BTC}@{btc[-1]},{ETH}@{eth[-1]}"
    assert set(requested(after_seal)) == {BTC_KEY}
    newest = list_segments(landing_uri, TRADES_KIND, instrument=BTC)[-1]
    assert requested(after_seal)[BTC_KEY].tags["trading/segment.BINANCE.BTCUSDT"] == newest.stem
    assert newest.stem > btc[-1] and newest.location.startswith(landing_uri)
