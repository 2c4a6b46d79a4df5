"""A model version that reads a feature the sidecar's vector does not carry (one trained on
another feature service) is refused when the sidecar loads it, with a reason naming what it
lacks, instead of failing every tick (real sqlite MLflow, the real model watcher, a sidecar built
on its feature service, real onnxruntime)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.app import Sidecar
from streaming.config import SidecarConfig
from streaming.inference import SlotChange
from streaming.model_watcher import ModelWatcher
from tests.integration.test_inference_swap import NAMES, exported
from trading_assets.lib.models.registry import record_gate_verdict, register_model, set_alias

SERVICE = "signal_v2"
OLDER_SERVICE_INPUTS = [*NAMES, "vwap_60s"]  # vwap_{w}s: served by signal_v1, not by v2


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A sidecar on ``SERVICE`` with a real sqlite MLflow, not running: its model path is
    stepped by hand (the watcher's poll, then the slots' refresh)."""
    config = SidecarConfig(
        instruments=("BINANCE:BTCUSDT",),
        ws_base_url="ws://unused",
        rest_base_url="http://unused",
        data_root=tmp_path / "data",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        feature_service=SERVICE,
    )
    built = Sidecar(config)
    try:
        yield built
    finally:
        for writer in built.writers.values():
            writer.close()
        built.online_writer.close()


def register_passed(tracking_uri: str, name: str, names: list[str], artifacts: Path) -> str:
    version = register_model(
        tracking_uri,
        name,
        exported(tuple(names), 1),
        names,
        "signal_v1",
        dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 8, tzinfo=dt.UTC),
        metrics={},
        params={},
        artifact_location=artifacts.as_uri(),
    ).version
    record_gate_verdict(tracking_uri, name, version, True, "test model")
    return str(version)


def test_a_version_reading_features_the_sidecar_does_not_serve_is_refused_at_load(
    sidecar, tmp_path
):
    # Arrange: a gated @champion trained with a feature the sidecar's service does not serve
    config = sidecar.config
    uri, name = str(config.tracking_uri), config.model_name
    version = register_passed(uri, name, OLDER_SERVICE_INPUTS, tmp_path / "artifacts")
    set_alias(uri, name, "champion", version)
    slots = sidecar.slots
    assert slots is not None
    watcher = ModelWatcher(uri, name, slots.directory)

    # Act: two polls
    watcher.sync()
    first = slots.refresh()
    second = slots.refresh()
    ready = sidecar.readiness()

    # Assert: nothing loaded, the reason names the missing feature, said once
    assert "vwap_60s" not in sidecar.feature_order and set(NAMES) <= set(sidecar.feature_order)
    assert slots.versions() == {}
    assert first.changes["champion"] is second.changes["champion"] is SlotChange.FAILED
    refusal = (
        f"version {version} reads vwap_60s, which the sidecar's feature service does not serve"
    )
    assert first.errors["champion"] == refusal
    assert slots.load_failures == 1
    assert not ready.ready
    assert ready.reasons[0] == f"no @champion: version {version} did not load: {refusal}"
    assert sum(refusal in reason for reason in ready.reasons) == 1
