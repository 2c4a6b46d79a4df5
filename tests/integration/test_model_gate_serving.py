"""The sidecar and the evaluation gate: the model watcher mirrors no version the gate did not
pass, whatever alias points at it, and a sidecar with nothing to serve stays in safe mode and
says why, in ``/ready`` and in its predictions' reason (real sqlite MLflow, real onnxruntime, the
simulator as the market)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from streaming.inference import SlotChange
from streaming.model_files import Manifest, mirror_model, read_manifest, write_manifest
from streaming.simulator.server import run_simulator_in_thread
from tests.integration.live_sidecar import (
    api_url,
    land_history,
    served_until,
    start_sidecar,
    stop_sidecar,
    trading_config,
)
from tests.integration.test_inference_swap import NAMES, Store, exported
from trading_assets.lib.feature_store.spec import TRAINING_SERVICE, service_features
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.registry import load_by_alias, record_gate_verdict, register_model

FAILED_GATE = "failed the evaluation gate (beats_baselines)"


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One store for the module (MLflow's sqlite schema takes seconds to create); a name per test.
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def store(mlflow_root: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    uri = f"sqlite:///{mlflow_root / 'mlflow.db'}"
    return Store(uri, mlflow_root / "artifacts", request.node.name[:60], tmp_path / "data")


def register_failed(store: Store, seed: int, verdict: bool | None = False) -> str:
    """A version the gate failed (``verdict`` False) or has not judged yet (None)."""
    version = register_model(
        store.uri,
        store.name,
        exported(tuple(NAMES), seed),
        NAMES,
        "signal_v1",
        dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 8, tzinfo=dt.UTC),
        metrics={},
        params={},
        artifact_location=store.artifacts.as_uri(),
    )
    if verdict is not None:
        record_gate_verdict(store.uri, store.name, version.version, verdict, "IC 0.001 < 0.002")
    return str(version.version)


def test_with_no_champion_the_reason_names_the_newest_versions_gate_verdict(store):
    slots = store.slots()

    slots.refresh()
    nothing = slots.no_champion_reason()
    version = register_failed(store, seed=1, verdict=None)
    slots.refresh()
    pending = slots.no_champion_reason()
    record_gate_verdict(store.uri, store.name, version, False, "IC 0.001 < 0.002")
    slots.refresh()
    failed = slots.no_champion_reason()
    manifest = read_manifest(store.mirror)

    assert nothing == "no @champion: no model version is registered"
    assert pending == (
        f"no @champion: newest version {version} has no verdict from the evaluation gate "
        "(beats_baselines) yet"
    )
    assert failed == f"no @champion: newest version {version} {FAILED_GATE}"
    assert manifest is not None and manifest.newest is not None
    assert (manifest.newest.verdict, manifest.newest.reason) == ("failed", "IC 0.001 < 0.002")
    assert slots.versions() == {}


def test_an_alias_set_by_hand_on_a_failed_version_is_never_served(store, tmp_path):
    gated, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", gated)
    serving = store.slots()
    serving.refresh()
    failed = register_failed(store, seed=2)
    # The MLflow UI sets aliases without asking the gate.
    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    client.set_registered_model_alias(store.name, "champion", failed)
    client.set_registered_model_alias(store.name, "shadow", failed)
    fresh = Store(store.uri, store.artifacts, store.name, tmp_path / "fresh").slots()

    kept = serving.refresh()
    started = fresh.refresh()

    # A running sidecar keeps the gated model it serves; a starting one serves nothing.
    assert kept.changes == {
        "champion": SlotChange.FAILED,
        "canary": SlotChange.UNCHANGED,
        "shadow": SlotChange.FAILED,
    }
    assert serving.versions() == {"champion": gated}
    assert fresh.versions() == {} and set(started.errors) == {"champion", "shadow"}
    reason = fresh.no_champion_reason()
    assert reason == f"no @champion: version {failed} is not served: it {FAILED_GATE}"
    manifest = read_manifest(store.mirror)
    assert manifest is not None and manifest.roles["champion"].onnx is None
    assert not list(store.mirror.glob(f"v{failed}.onnx"))


def test_a_mirrored_version_the_gate_fails_later_stops_being_served(store):
    # Arrange: a running sidecar serves a version the gate passed
    version, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", version)
    serving = store.slots()
    serving.refresh()
    was = serving.versions()
    # The verdict is revisited (a re-run check, an operator)
    record_gate_verdict(store.uri, store.name, version, False, "IC 0.001 < 0.002")

    # Act
    withdrawn = serving.refresh()
    again = serving.refresh()

    # Assert: the mirror drops it with the gate's reason, and the slot empties
    assert was == {"champion": version}
    assert withdrawn.changes["champion"] is SlotChange.REMOVED
    assert again.changes["champion"] is SlotChange.FAILED  # from then on, as a fresh refusal
    assert serving.versions() == {}
    manifest = read_manifest(store.mirror)
    assert manifest is not None
    entry = manifest.roles["champion"]
    assert entry.onnx is None and entry.error == f"it {FAILED_GATE}"
    reason = serving.no_champion_reason()
    assert reason == f"no @champion: version {version} is not served: it {FAILED_GATE}"


def test_a_version_mirrored_before_it_had_a_verdict_is_not_served_after_a_restart(store):
    # Arrange: an alias set by hand on a version the gate never judged, and a mirror (which
    # survives restarts) that holds it, as written before the watcher asked the gate
    version = register_failed(store, seed=2, verdict=None)
    store.client().set_registered_model_alias(store.name, "champion", version)
    loaded = load_by_alias(store.uri, store.name, "champion")
    entry = mirror_model(
        store.mirror, loaded.version, loaded.onnx_bytes, loaded.feature_names, loaded.metadata
    )
    write_manifest(store.mirror, Manifest(store.name, {"champion": entry}))
    restarted = store.slots()

    # Act
    started = restarted.refresh()

    # Assert
    assert restarted.versions() == {}
    assert started.changes["champion"] is SlotChange.FAILED
    manifest = read_manifest(store.mirror)
    assert manifest is not None and manifest.roles["champion"].onnx is None
    no_verdict = "has no verdict from the evaluation gate (beats_baselines)"
    reason = restarted.no_champion_reason()
    assert reason == f"no @champion: version {version} is not served: it {no_verdict}"


@pytest.mark.integration
@pytest.mark.timeout(240)
async def test_a_sidecar_with_only_a_failed_version_stays_in_safe_mode_and_says_why(tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    names = service_features(TRAINING_SERVICE)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, len(names))).astype(np.float32)
    booster = xgb.train(
        {"max_depth": 2, "nthread": 1, "seed": 0},
        xgb.DMatrix(x, label=1e-3 * x[:, 0], feature_names=names),
        num_boost_round=3,
    )
    version = register_model(
        tracking, "signal", export_onnx(booster, names), names, TRAINING_SERVICE,
        dt.datetime(2024, 3, 1, tzinfo=dt.UTC), dt.datetime(2024, 3, 2, tzinfo=dt.UTC),
        metrics={}, params={}, artifact_location=(tmp_path / "artifacts").as_uri(),
    ).version  # fmt: skip
    record_gate_verdict(tracking, "signal", version, False, "IC 0.001 < 0.002")
    instruments = ("BINANCE:BTCUSDT",)
    newest_failed = f"no @champion: newest version {version} {FAILED_GATE}"
    hand_set = f"no @champion: version {version} is not served: it {FAILED_GATE}"
    seen: list[dict] = []
    with run_simulator_in_thread(symbols=["BTCUSDT"], seed=5, trades_per_day=3_000_000) as sim:
        config = trading_config(tmp_path / "data", sim, instruments, tracking)
        await land_history(sim.http_url, config.landing_root, instruments)
        sidecar, task = start_sidecar(config)
        try:
            async with aiohttp.ClientSession() as http:
                said = await served_until(
                    http, config, instruments[0], lambda p: p["reason"] == newest_failed, 90, seen
                )
                async with http.get(f"{api_url(config)}/ready") as response:
                    ready = (response.status, await response.json())
                MlflowClient(tracking, tracking).set_registered_model_alias(
                    "signal", "champion", str(version)
                )
                refused = await served_until(
                    http, config, instruments[0], lambda p: p["reason"] == hand_set, 60, seen
                )
                await asyncio.sleep(4 * config.model_poll_s)
                async with http.get(f"{api_url(config)}/ready") as response:
                    still = (response.status, await response.json())
        finally:
            await stop_sidecar(sidecar, task)

    assert said["model_version"] == "" and not said["should_trade"]
    assert ready[0] == 503 and ready[1]["reasons"][0] == newest_failed
    assert refused["model_version"] == "" and not refused["should_trade"]
    assert still[0] == 503 and still[1]["reasons"][0] == hand_set
    # Nothing was ever scored by the version the gate failed.
    assert seen and all(p["model_version"] == "" for p in seen)
