"""A sidecar whose landing location is elsewhere ships its sealed segments there, the last ones
on the way out too, and shows the shipper in ``/metrics``; one reading its own folder ships
nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.online import open_feature_store
from tests.services import free_port
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions

pytestmark = pytest.mark.integration


def config_for(tmp_path: Path) -> SidecarConfig:
    return SidecarConfig(
        instruments=("BINANCE:BTCUSDT",),
        ws_base_url=f"ws://127.0.0.1:{free_port()}",  # nothing listens: safe-mode predictions
        rest_base_url=f"http://127.0.0.1:{free_port()}",
        data_root=tmp_path / "data",
        tracking_uri=None,
        api_port=free_port(),
        predict_every_s=0.2,
    )


async def serve_briefly(sidecar: Sidecar, ready=lambda: True) -> str:
    """Run until a prediction was published and ``ready()``, read ``/metrics``, stop; the
    metrics text."""
    task = asyncio.create_task(sidecar.run())
    deadline = asyncio.get_running_loop().time() + 60
    while sidecar.hub.latest().get("BINANCE:BTCUSDT") is None or not ready():
        assert asyncio.get_running_loop().time() < deadline, "the sidecar did not get ready"
        await asyncio.sleep(0.1)
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{sidecar.api.url}/metrics")).text
    sidecar.stop()
    await asyncio.wait_for(task, 60)
    return metrics


def sealed_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


async def test_a_sidecar_ships_its_sealed_segments_to_a_landing_location_elsewhere(tmp_path):
    config = config_for(tmp_path)
    store = open_feature_store(config)
    apply_definitions(store, load_definitions())
    target = tmp_path / "shipped"
    sidecar = Sidecar(config, store, landing_uri=str(target))

    metrics = await serve_briefly(sidecar, lambda: sidecar.metrics.shipping.state is not None)

    assert sidecar.shipper is not None
    landed = sealed_files(config.landing_root)
    assert any(key.startswith("predictions/BINANCE:BTCUSDT/") for key in landed)
    assert sealed_files(target) == landed  # sealed on the way out, shipped before the end
    assert sidecar.shipper.state.backlog == 0 and sidecar.shipper.state.last_error is None
    assert "sidecar_landing_ship_backlog_segments" in metrics
    assert "sidecar_landing_ship_failing 0.0" in metrics


async def test_a_sidecar_whose_landing_location_is_its_folder_ships_nothing(tmp_path):
    config = config_for(tmp_path)
    store = open_feature_store(config)
    apply_definitions(store, load_definitions())
    sidecar = Sidecar(config, store, landing_uri=str(config.landing_root))

    metrics = await serve_briefly(sidecar)

    assert sidecar.shipper is None
    assert "sidecar_landing_ship" not in metrics
    assert not list(config.landing_root.glob(".shipped-*"))
