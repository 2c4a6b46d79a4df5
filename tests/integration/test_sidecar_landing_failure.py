"""A sidecar whose landing child dies stops, and still closes everything else on the way out."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.landing import LandingProcessError
from streaming.online import open_feature_store
from tests.services import free_port
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.lakehouse.landing import list_segments

pytestmark = pytest.mark.integration


async def test_a_dead_landing_child_stops_the_sidecar_after_closing_the_rest(tmp_path):
    config = SidecarConfig(
        instruments=("BINANCE:BTCUSDT",),
        ws_base_url=f"ws://127.0.0.1:{free_port()}",  # nothing listens: the feed keeps retrying
        rest_base_url=f"http://127.0.0.1:{free_port()}",
        data_root=tmp_path / "data",
        tracking_uri=None,
        api_port=free_port(),
        predict_every_s=0.2,
    )
    store = open_feature_store(config)
    apply_definitions(store, load_definitions())
    sidecar = Sidecar(config, store)
    task = asyncio.create_task(sidecar.run())
    deadline = asyncio.get_running_loop().time() + 30
    while (
        "BINANCE:BTCUSDT" not in sidecar.hub.latest()
    ):  # serving (in safe mode: no data, no model)
        assert asyncio.get_running_loop().time() < deadline, "no prediction was published"
        await asyncio.sleep(0.1)

    os.kill(sidecar.landing.pid, signal.SIGKILL)
    with pytest.raises(LandingProcessError):
        await asyncio.wait_for(task, 30)  # the landing maintainer finds it dead and stops all

    # Everything else was closed all the same: predictions sealed, online writer closed.
    predictions = list_segments(config.landing_root, "predictions", include_open=True)
    assert predictions and all(segment.sealed for segment in predictions)
    with pytest.raises(RuntimeError, match="closed"):
        sidecar.online_writer.submit(None)  # type: ignore[arg-type]
