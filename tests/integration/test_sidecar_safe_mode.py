"""What a sidecar in safe mode serves when the model that would drive is not there: a record that
names no model, on ``/predictions/latest``, the stream and the metrics, never a @champion."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.fallback import FallbackLevel
from streaming.model_files import mirror_dir
from streaming.model_watcher import ModelWatcher
from streaming.predictions import decode_prediction
from tests.integration.live_sidecar import register_decisive_model
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
INSTRUMENT = "BINANCE:BTCUSDT"


def config_for(data: Path, tracking_uri: str | None) -> SidecarConfig:
    """A sidecar with no market connection: every instrument is in safe mode (no data at all).
    ``canary_share=0``: a @champion, were one loaded, would drive every decision."""
    return SidecarConfig(
        instruments=(INSTRUMENT,),
        ws_base_url="ws://unused",
        rest_base_url="http://unused",
        data_root=data,
        tracking_uri=tracking_uri,
        api_port=free_port(),
        canary_share=0.0,
    )


async def built(config: SidecarConfig) -> AsyncIterator[Sidecar]:
    """A sidecar not running, its API serving; predictions are made by hand."""
    sidecar = Sidecar(config)
    await sidecar.api.start()
    try:
        yield sidecar
    finally:
        await sidecar.api.stop()
        for writer in sidecar.writers.values():
            writer.close()
        sidecar.online_writer.close()
        if sidecar.slots is not None:
            sidecar.slots.close()


@pytest.fixture
async def modelless(tmp_path: Path) -> AsyncIterator[Sidecar]:
    async for sidecar in built(config_for(tmp_path / "data", None)):
        yield sidecar


@pytest.fixture
async def canary_only(tmp_path: Path) -> AsyncIterator[Sidecar]:
    """A sidecar whose registry has a @canary and no @champion, mirrored and loaded."""
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register_decisive_model(tracking, tmp_path / "artifacts", "canary")
    config = config_for(tmp_path / "data", tracking)
    async for sidecar in built(config):
        ModelWatcher(tracking, config.model_name, mirror_dir(config.data_root, "signal")).sync()
        assert sidecar.slots is not None
        sidecar.slots.refresh()
        assert set(sidecar.slots.snapshot()) == {"canary"}
        yield sidecar


async def served(sidecar: Sidecar) -> tuple[dict, dict[tuple[str, str], float]]:
    """The instrument's latest prediction as served, and ``sidecar_predictions_total`` by
    (symbol, role)."""
    async with aiohttp.ClientSession() as http:
        latest_url = f"{sidecar.api.url}/predictions/latest"
        async with http.get(latest_url, params={"symbol": INSTRUMENT}) as response:
            assert response.status == 200
            latest = await response.json()
        async with http.get(f"{sidecar.api.url}/metrics") as response:
            text = await response.text()
    counts = {
        (sample.labels["symbol"], sample.labels["role"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sidecar_predictions_total"
    }
    return latest, counts


async def test_without_any_model_safe_mode_names_no_role_and_no_version(modelless):
    stream_url = f"{modelless.api.url}/predictions/stream"
    async with aiohttp.ClientSession() as http, http.ws_connect(stream_url) as stream:
        made = modelless.predict(INSTRUMENT, time.time_ns())
        streamed = decode_prediction(await stream.receive_str(timeout=5))
    latest, counts = await served(modelless)

    (record,) = made
    assert record.fallback_level == FallbackLevel.SAFE and not record.should_trade
    assert latest["role"] is None and latest["model_version"] == ""
    assert latest["reason"] and latest["confidence"] == 0.0
    assert streamed == record
    assert counts == {(INSTRUMENT, "none"): 1.0}


async def test_with_only_a_canary_the_served_safe_mode_record_claims_no_champion(canary_only):
    made = canary_only.predict(INSTRUMENT, time.time_ns())
    latest, counts = await served(canary_only)

    by_role = {p.role: p for p in made}
    assert set(by_role) == {"canary", None}
    # The canary scored the tick, logged and not acted on; what serves names no model.
    assert by_role["canary"].model_version and not by_role["canary"].should_trade
    assert latest["role"] is None and latest["model_version"] == ""
    assert latest["timestamp"] == by_role[None].timestamp and not latest["should_trade"]
    assert "champion" not in {role for _, role in counts}
    assert counts == {(INSTRUMENT, "canary"): 1.0, (INSTRUMENT, "none"): 1.0}
