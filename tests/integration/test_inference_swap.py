"""Model slots against a real sqlite MLflow and real onnxruntime: loads, hot swaps, failures.

The registry side is the model watcher (MLflow → local mirror), stepped in process here by
:class:`MirroredSlots`; the last test runs it as the sidecar does, in its own process."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from streaming.inference import ModelSlots, SlotChange
from streaming.metrics import SidecarMetrics
from streaming.model_files import MANIFEST_FILE, mirror_dir, read_manifest
from streaming.watcher_process import WatcherProcess
from tests.mirrored_slots import MirroredSlots
from trading_assets.lib.models.inference import FeatureOrderError, OnnxModel
from trading_assets.lib.models.onnx_export import export_onnx
from trading_assets.lib.models.registry import (
    ONNX_FILE,
    record_gate_verdict,
    register_model,
    set_alias,
)

NAMES = ["mom_10s", "rv_60s", "flow_imb_10s", "spread_bps"]
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
END = dt.datetime(2024, 3, 8, tzinfo=dt.UTC)
_model_ids = itertools.count()


@cache
def exported(names: tuple[str, ...], seed: int) -> bytes:
    """A small trained booster as ONNX; cached because several tests reuse the same models."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, len(names))).astype(np.float32)
    y = (1e-3 * (x[:, 0] - 0.5 * x[:, -1]) + 1e-4 * rng.normal(size=600)).astype(np.float32)
    data = xgb.DMatrix(x, label=y, feature_names=list(names))
    params = {"objective": "reg:squarederror", "max_depth": 3, "seed": seed, "nthread": 1}
    return export_onnx(xgb.train(params, data, num_boost_round=15), list(names))


@dataclass
class Store:
    """A real sqlite MLflow with local artifacts; each test registers under a name of its own."""

    uri: str
    artifacts: Path
    name: str = ""
    data_root: Path = Path()

    def register(self, onnx_bytes: bytes, names: list[str]) -> str:
        version = register_model(
            self.uri,
            self.name,
            onnx_bytes,
            names,
            "signal_v1",
            START,
            END,
            metrics={},
            params={},
            artifact_location=self.artifacts.as_uri(),
        )
        record_gate_verdict(self.uri, self.name, version.version, True, "test model")
        return str(version.version)

    def register_trained(self, names: list[str], seed: int) -> tuple[str, bytes]:
        onnx_bytes = exported(tuple(names), seed)
        return self.register(onnx_bytes, names), onnx_bytes

    def alias(self, alias: str, version: str) -> None:
        set_alias(self.uri, self.name, alias, version)

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def slots(self, **kwargs) -> MirroredSlots:
        return MirroredSlots(self.uri, self.name, self.data_root, **kwargs)

    @property
    def mirror(self) -> Path:
        return mirror_dir(self.data_root, self.name)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    # One database for the module: creating MLflow's sqlite schema costs seconds each time.
    root = tmp_path_factory.mktemp("mlflow")
    return Store(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")


@pytest.fixture
def store(shared_store: Store, tmp_path: Path) -> Store:
    name = f"signal_{next(_model_ids)}"
    return Store(shared_store.uri, shared_store.artifacts, name, tmp_path / "data")


@pytest.fixture
def metrics() -> SidecarMetrics:
    return SidecarMetrics()


def rows(seed: int = 11, n: int = 64) -> list[dict[str, float]]:
    values = np.random.default_rng(seed).normal(size=(n, len(NAMES))).astype(np.float32)
    return [dict(zip(NAMES, map(float, row), strict=True)) for row in values]


def reference(onnx_bytes: bytes, names: list[str], features: list[dict[str, float]]) -> np.ndarray:
    matrix = np.array([[row[n] for n in names] for row in features], dtype=np.float32)
    return OnnxModel(onnx_bytes, names).predict(matrix)


def swaps(metrics: SidecarMetrics, role: str, outcome: str) -> float:
    labels = {"role": role, "outcome": outcome}
    return metrics.registry.get_sample_value("sidecar_model_swaps_total", labels) or 0.0


def served_version(metrics: SidecarMetrics, role: str, version: str) -> float | None:
    labels = {"role": role, "version": version}
    return metrics.registry.get_sample_value("sidecar_model_version_info", labels)


def test_refresh_fills_the_aliased_slots_and_reloads_nothing_unchanged(store, metrics):
    v1, bytes1 = store.register_trained(NAMES, seed=1)
    v2, bytes2 = store.register_trained(NAMES, seed=2)
    store.alias("champion", v1)
    store.alias("canary", v2)
    slots = store.slots(metrics=metrics)
    features = rows()

    first = slots.refresh()
    champion, canary = slots.get("champion"), slots.get("canary")
    second = slots.refresh()

    assert first.ok and first.changes == {
        "champion": SlotChange.LOADED,
        "canary": SlotChange.LOADED,
        "shadow": SlotChange.UNCHANGED,
    }
    assert set(second.changes.values()) == {SlotChange.UNCHANGED}
    assert slots.get("champion") is champion
    assert slots.versions() == {"champion": v1, "canary": v2}
    assert slots.get("shadow") is None
    assert champion is not None and canary is not None
    np.testing.assert_allclose(
        [champion.predict_features(row) for row in features],
        reference(bytes1, NAMES, features),
        atol=1e-7,
    )
    np.testing.assert_allclose(
        [canary.predict_features(row) for row in features],
        reference(bytes2, NAMES, features),
        atol=1e-7,
    )
    assert served_version(metrics, "champion", v1) == 1
    assert served_version(metrics, "canary", v2) == 1
    assert swaps(metrics, "champion", "loaded") == 1


async def test_swap_during_a_tight_prediction_loop_never_misses_a_call(store, metrics):
    v1, bytes1 = store.register_trained(NAMES, seed=1)
    # The new version reads its features in another order: callers pass names, not positions.
    names2 = NAMES[::-1]
    v2, bytes2 = store.register_trained(names2, seed=2)
    store.alias("champion", v1)
    slots = store.slots(metrics=metrics)
    assert slots.refresh().changes["champion"] is SlotChange.LOADED
    features = rows()
    expected = {v1: reference(bytes1, NAMES, features), v2: reference(bytes2, names2, features)}
    served: list[tuple[str | None, int, float]] = []
    stop = asyncio.Event()

    async def serve() -> None:
        i = 0
        while not stop.is_set():
            model, row = slots.get("champion"), i % len(features)
            value = model.predict_features(features[row]) if model is not None else np.nan
            served.append((model.version if model is not None else None, row, value))
            i += 1
            await asyncio.sleep(0)

    loop_task = asyncio.create_task(serve())
    await asyncio.to_thread(store.alias, "champion", v2)
    before_swap = len(served)
    report = await slots.refresh_async()
    after_swap = len(served)
    while len(served) < after_swap + 500:
        await asyncio.sleep(0)
    stop.set()
    await loop_task
    slots.close()

    versions = [version for version, _, _ in served]
    assert report.changes["champion"] is SlotChange.LOADED
    assert None not in versions
    # The event loop kept serving while the new version downloaded and warmed up.
    assert after_swap > before_swap
    switch = versions.index(v2)
    assert switch > 0
    assert set(versions[:switch]) == {v1} and set(versions[switch:]) == {v2}
    assert set(versions[after_swap:]) == {v2}
    for version, row, value in served:
        assert version is not None
        assert value == pytest.approx(float(expected[version][row]), abs=1e-7)
    assert served_version(metrics, "champion", v2) == 1
    assert served_version(metrics, "champion", v1) is None


def corrupt_artifact(store: Store, version: str) -> None:
    source = str(store.client().get_model_version(store.name, version).source)
    path = Path(urlparse(source).path) / ONNX_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("fault", ["truncated artifact", "not an ONNX model"])
def test_failed_load_keeps_the_old_model_and_is_counted(store, metrics, fault):
    v1, bytes1 = store.register_trained(NAMES, seed=1)
    if fault == "truncated artifact":
        bad, _ = store.register_trained(NAMES, seed=2)
        corrupt_artifact(store, bad)
    else:
        # The checksum matches what was registered, but onnxruntime cannot build a session.
        bad = store.register(b"\x08\x07 definitely not protobuf", NAMES)
    store.alias("champion", v1)
    slots = store.slots(metrics=metrics)
    slots.refresh()
    store.alias("champion", bad)
    features = rows(n=8)

    report = slots.refresh()

    assert report.changes["champion"] is SlotChange.FAILED
    assert "champion" in report.errors and not report.ok
    model = slots.get("champion")
    assert model is not None and model.version == v1
    np.testing.assert_allclose(
        [model.predict_features(row) for row in features],
        reference(bytes1, NAMES, features),
        atol=1e-7,
    )
    assert slots.load_failures == 1
    assert swaps(metrics, "champion", "failed") == 1
    assert served_version(metrics, "champion", v1) == 1


def test_a_damaged_mirror_file_keeps_the_old_model(store, metrics):
    v1, _ = store.register_trained(NAMES, seed=1)
    v2, _ = store.register_trained(NAMES, seed=2)
    store.alias("champion", v1)
    slots = store.slots(metrics=metrics)
    slots.refresh()
    store.alias("champion", v2)
    slots.watcher.sync()
    damaged = store.mirror / f"v{v2}.onnx"
    damaged.write_bytes(damaged.read_bytes()[:-16])

    report = slots.slots.refresh()

    assert report.changes["champion"] is SlotChange.FAILED
    assert "checksum" in report.errors["champion"]
    assert slots.versions() == {"champion": v1}
    assert swaps(metrics, "champion", "failed") == 1


def test_a_damaged_manifest_changes_nothing_until_the_watcher_rewrites_it(store):
    v1, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", v1)
    slots = store.slots()
    slots.refresh()
    (store.mirror / MANIFEST_FILE).write_text('{"model": "signal", "ro')

    damaged = slots.slots.refresh()
    healed = slots.refresh()

    assert damaged.registry_error is not None and "unreadable" in damaged.registry_error
    assert healed.ok and set(healed.changes.values()) == {SlotChange.UNCHANGED}
    assert slots.versions() == {"champion": v1}


def test_removed_alias_empties_only_its_slot(store, metrics):
    v1, _ = store.register_trained(NAMES, seed=1)
    v2, _ = store.register_trained(NAMES, seed=2)
    store.alias("champion", v1)
    store.alias("shadow", v2)
    slots = store.slots(metrics=metrics)
    slots.refresh()
    assert slots.versions() == {"champion": v1, "shadow": v2}
    store.client().delete_registered_model_alias(store.name, "shadow")

    report = slots.refresh()

    assert report.changes["shadow"] is SlotChange.REMOVED
    assert report.changes["champion"] is SlotChange.UNCHANGED
    assert slots.get("shadow") is None
    assert slots.versions() == {"champion": v1}
    assert served_version(metrics, "shadow", v2) is None
    assert swaps(metrics, "shadow", "removed") == 1


def test_unreachable_registry_changes_nothing(store, tmp_path):
    v1, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", v1)
    slots = store.slots()
    slots.refresh()
    # A database path under a regular file cannot be opened: a stand-in for a registry outage.
    (tmp_path / "not_a_dir").write_text("")
    slots.watcher.tracking_uri = f"sqlite:///{tmp_path / 'not_a_dir' / 'mlflow.db'}"

    report = slots.refresh()

    assert report.registry_error is not None and not report.ok
    assert set(report.changes.values()) == {SlotChange.UNCHANGED}
    assert slots.versions() == {"champion": v1}


def test_a_model_missing_from_the_registry_keeps_serving_slots(store):
    v1, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", v1)
    slots = store.slots()
    empty_start = Store(store.uri, store.artifacts, "signal_never_registered", store.data_root)
    empty_start = empty_start.slots()
    slots.refresh()
    store.client().delete_registered_model(store.name)

    report = slots.refresh()
    fresh = empty_start.refresh()

    assert report.registry_error is not None
    assert slots.versions() == {"champion": v1}
    # Before anything was loaded, an unknown model simply means nothing to serve yet.
    assert fresh.ok and empty_start.versions() == {}


def test_model_needs_its_named_features(store):
    v1, _ = store.register_trained(NAMES, seed=1)
    store.alias("champion", v1)
    slots = store.slots(roles=["champion"])
    slots.refresh()
    model = slots.get("champion")
    assert model is not None
    partial = {name: 0.0 for name in NAMES[:-1]}

    with pytest.raises(FeatureOrderError, match=NAMES[-1]):
        model.predict_features(partial)


async def test_a_watcher_process_feeds_the_polling_slots(store, metrics):
    v1, _ = store.register_trained(NAMES, seed=1)
    v2, _ = store.register_trained(NAMES, seed=2)
    store.alias("champion", v1)
    slots = store.slots(metrics=metrics).slots
    watcher = WatcherProcess(store.uri, store.name, store.mirror, poll_s=0.1)
    supervisor = asyncio.create_task(watcher.supervise())
    poller = asyncio.create_task(slots.poll(interval_s=0.05))

    seen = await wait_for_version(slots, v1)
    await asyncio.to_thread(store.alias, "champion", v2)
    moved = await wait_for_version(slots, v2)
    pid = watcher.pid
    for task in (poller, supervisor):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    slots.close()

    assert (seen, moved) == (v1, v2)
    assert swaps(metrics, "champion", "loaded") == 2
    manifest = read_manifest(store.mirror)
    assert manifest is not None and manifest.roles["champion"].version == v2
    assert pid is not None and not process_alive(pid)  # cancelling the supervisor ended it


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


async def wait_for_version(slots: ModelSlots, version: str, attempts: int = 2400) -> str | None:
    # Up to a minute: the watcher process imports MLflow before its first poll.
    for _ in range(attempts):
        model = slots.get("champion")
        if model is not None and model.version == version:
            return model.version
        await asyncio.sleep(0.025)
    model = slots.get("champion")
    return model.version if model is not None else None
