"""The sidecar's model slots: ``@champion``, ``@canary`` and ``@shadow``, hot-swapped.

The registry side runs in a child process (:mod:`streaming.model_watcher`): it polls MLflow and
mirrors each aliased version into a local directory with a manifest (:mod:`streaming.model_files`),
so the serving process never imports MLflow. The slots follow that manifest: a refresh (off the
event loop, on a dedicated loader thread) reads it, and when an alias moved the new version is
loaded beside the old one: ONNX file checked against its checksum, onnxruntime session, one
warm-up prediction. Only a fully working model is published, by replacing one immutable mapping
with a single reference assignment, so a reader sees either the old or the new model and never
a half-built one. A failed load (the watcher's fetch or the session here) keeps the old model
and is logged and counted, and is retried at the next poll since a download may fail
transiently. A version that reads a feature the sidecar's vector does not carry (one trained
on another feature service) is refused before loading, once: it could only fail every tick. An
alias removed in the registry empties its slot, and so does a manifest entry that withdraws the
version a slot serves (the evaluation gate no longer passes it). A registry that cannot be
reached, or that no longer knows the model at all, changes nothing; before anything was
mirrored, a model the registry does not know means nothing to serve yet.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from streaming.metrics import SidecarMetrics
from streaming.model_files import (
    Manifest,
    MirrorEntry,
    manifest_signature,
    no_champion_reason,
    read_manifest,
    read_model,
)
from streaming.predictions import ROLES, Role
from trading_assets.lib.models.inference import FeatureOrderError, OnnxModel, warm_up_model
from trading_assets.lib.models.policy import (
    DEFAULT_SIGNAL_SCALE,
    signal_from_return,
    signal_scale_of,
)

log = logging.getLogger(__name__)
DEFAULT_POLL_SECONDS = 10.0
MANIFEST_CHECK_S = 1.0  # how often the poller stats the manifest between refreshes


class ModelArtifact(Protocol):
    """A version's bytes and description, from the mirror or straight from the registry."""

    @property
    def version(self) -> str: ...
    @property
    def onnx_bytes(self) -> bytes: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ModelScore:
    """One model's raw output for one feature vector, and the signal it maps to."""

    role: Role
    version: str
    predicted_return: float
    signal: float


class ServingModel:
    """A loaded, warmed-up model version serving one alias slot; immutable once published."""

    def __init__(self, role: Role, loaded: ModelArtifact, default_scale: float) -> None:
        self.role: Role = role
        self.version = loaded.version
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(loaded.metadata))
        self.model = OnnxModel(loaded.onnx_bytes, loaded.feature_names)
        self.feature_names = self.model.feature_names
        self.signal_scale = signal_scale_of(loaded.metadata, default_scale)
        self.loaded_at_ns = time.time_ns()

    def warm_up(self) -> None:
        """One prediction now (:func:`~trading_assets.lib.models.inference.warm_up_model`): a
        model that cannot score a zero vector to a finite number is refused before it serves."""
        warm_up_model(self.model, self.version)

    def predict_vector(self, vector: Sequence[float] | np.ndarray) -> float:
        """Predicted forward return for a vector already in :attr:`feature_names` order."""
        return self.model.predict_one(vector)

    def predict_features(self, features: Mapping[str, float]) -> float:
        """Predicted forward return from named features, gathered in this model's own order.

        Versions may use different feature lists, so callers pass names, not positions.
        """
        try:
            vector = [features[name] for name in self.feature_names]
        except KeyError as missing:
            raise FeatureOrderError(f"version {self.version} needs feature {missing}") from None
        return self.model.predict_one(vector)

    def score(self, features: Mapping[str, float]) -> ModelScore:
        """The raw prediction and its signal (``tanh(prediction / signal_scale)``)."""
        predicted = self.predict_features(features)
        signal = signal_from_return(predicted, self.signal_scale)
        return ModelScore(self.role, self.version, predicted, signal)


class SlotChange(StrEnum):
    """What a refresh did to one slot."""

    UNCHANGED = "unchanged"
    LOADED = "loaded"
    FAILED = "failed"
    REMOVED = "removed"


@dataclass
class RefreshReport:
    """The outcome of one refresh: per-slot changes, load errors, and the registry's state."""

    changes: dict[Role, SlotChange] = field(default_factory=dict)
    errors: dict[Role, str] = field(default_factory=dict)
    registry_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the registry answered (as last mirrored) and no load failed."""
        return self.registry_error is None and not self.errors


class ModelSlots:
    """The alias slots of one registered model, kept in step with the watcher's mirror.

    Readers call :meth:`get` or :meth:`snapshot` from any thread without locking; writers
    (:meth:`refresh`) are serialised and publish whole new mappings. ``feature_order``: the
    features the sidecar's vector carries (None: any); a version reading others is refused.
    """

    def __init__(
        self,
        directory: Path,
        *,
        roles: Sequence[Role] = ROLES,
        signal_scale: float = DEFAULT_SIGNAL_SCALE,
        metrics: SidecarMetrics | None = None,
        feature_order: Sequence[str] | None = None,
    ) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; use {', '.join(ROLES)}")
        self.directory = directory
        self.model_name = directory.name
        self.roles: tuple[Role, ...] = tuple(roles)
        self.signal_scale = signal_scale
        self.metrics = metrics
        self.feature_order = None if feature_order is None else frozenset(feature_order)
        self.load_failures = 0
        self._slots: Mapping[Role, ServingModel] = MappingProxyType({})
        self._refresh_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._manifest: Manifest | None = None
        self._signature: tuple[int, int, int] | None = None
        self._load_errors: dict[Role, str] = {}

    def get(self, role: Role = "champion") -> ServingModel | None:
        """The model serving ``role`` now, or None when the slot is empty."""
        return self._slots.get(role)

    def snapshot(self) -> Mapping[Role, ServingModel]:
        """All filled slots as one consistent, read-only mapping."""
        return self._slots

    def versions(self) -> dict[Role, str]:
        """Version served per filled slot (for readiness and logs)."""
        return {role: model.version for role, model in self._slots.items()}

    def no_champion_reason(self) -> str:
        """Why the @champion slot is empty, e.g. the newest version failed the evaluation gate."""
        return no_champion_reason(self._manifest, self._load_errors.get("champion"))

    def refresh(self) -> RefreshReport:
        """Read the manifest and bring every slot in line. Blocking: run it off the loop."""
        with self._refresh_lock:
            report = RefreshReport()
            try:
                manifest = self._read()
            except Exception as exc:  # a damaged manifest: keep serving what we have
                log.warning("model mirror %s unreadable: %s", self.directory, exc)
                report.registry_error = f"unreadable manifest: {exc}"
                return report
            if manifest is None and self._slots:
                # The mirror vanished under a serving sidecar: a reset data directory more
                # likely than a withdrawal, which the watcher writes as an empty manifest.
                report.registry_error = f"no manifest in {self.directory}"
                return report
            if manifest is not None:
                report.registry_error = manifest.registry_error
            entries = manifest.roles if manifest is not None else {}
            for role in self.roles:
                report.changes[role] = self._bring_in_line(role, entries.get(role), report)
            return report

    async def refresh_async(self) -> RefreshReport:
        """:meth:`refresh` on the loader thread, leaving the event loop free to serve."""
        if self._executor is None:
            # One loader thread: loads never pile up, and never compete with the default executor.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="model-loader")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.refresh)

    async def poll(self, interval_s: float = DEFAULT_POLL_SECONDS) -> None:
        """Refresh now, then whenever the manifest is rewritten (a stat every second at most)
        and at least every ``interval_s`` seconds, which retries failed loads; until cancelled.
        """
        last = -math.inf
        while True:
            moved = manifest_signature(self.directory) != self._signature
            if moved or time.monotonic() - last >= interval_s:
                last = time.monotonic()
                try:
                    await self.refresh_async()
                except Exception:  # a bug in one refresh must not end polling for good
                    log.exception("model refresh for %s failed unexpectedly", self.model_name)
            await asyncio.sleep(min(interval_s, MANIFEST_CHECK_S))

    def close(self) -> None:
        """Stop the loader thread (a load in progress finishes first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _read(self) -> Manifest | None:
        """The manifest, parsed again only when its file changed."""
        signature = manifest_signature(self.directory)
        if signature != self._signature or signature is None:
            # A damaged file is read again only once rewritten, not at every poll.
            self._signature = signature
            self._manifest = read_manifest(self.directory)
        return self._manifest

    def _bring_in_line(
        self, role: Role, entry: MirrorEntry | None, report: RefreshReport
    ) -> SlotChange:
        current = self._slots.get(role)
        if entry is None:
            if current is None:
                return SlotChange.UNCHANGED
            self._publish(role, None)
            log.info(
                "%s@%s removed; slot emptied (was version %s)",
                self.model_name,
                role,
                current.version,
            )
            self._count(role, SlotChange.REMOVED)
            return SlotChange.REMOVED
        target = entry.version
        if current is not None and current.version == target:
            if entry.servable:
                return SlotChange.UNCHANGED
            self._publish(role, None)
            log.error("%s@%s version %s withdrawn, slot emptied: %s",
                      self.model_name, role, target, entry.error)  # fmt: skip
            self._count(role, SlotChange.REMOVED)
            return SlotChange.REMOVED
        refusal = self._refusal(entry)
        if refusal is not None:
            report.errors[role] = refusal
            if self._load_errors.get(role) != refusal:  # said and counted once, not every poll
                self._load_errors[role] = refusal
                self.load_failures += 1
                kept = current.version if current is not None else "nothing"
                log.error("not loading %s@%s: %s; still serving %s",
                          self.model_name, role, refusal, kept)  # fmt: skip
                self._count(role, SlotChange.FAILED)
            return SlotChange.FAILED
        try:
            loaded = read_model(self.directory, entry)
            candidate = ServingModel(role, loaded, self.signal_scale)
            candidate.warm_up()
        except Exception as exc:
            self.load_failures += 1
            report.errors[role] = self._load_errors[role] = f"{type(exc).__name__}: {exc}"
            kept = current.version if current is not None else "nothing"
            log.error(
                "loading %s@%s (version %s) failed, still serving %s: %s",
                self.model_name,
                role,
                target,
                kept,
                exc,
            )
            self._count(role, SlotChange.FAILED)
            return SlotChange.FAILED
        self._publish(role, candidate)
        self._load_errors.pop(role, None)
        log.info(
            "%s@%s now serves version %s (was %s)",
            self.model_name,
            role,
            candidate.version,
            current.version if current is not None else "empty",
        )
        self._count(role, SlotChange.LOADED)
        return SlotChange.LOADED

    def _refusal(self, entry: MirrorEntry) -> str | None:
        """Why this sidecar cannot serve a mirrored version: features its vector lacks."""
        if self.feature_order is None or not entry.servable:
            return None
        missing = [name for name in entry.feature_names if name not in self.feature_order]
        if not missing:
            return None
        return (
            f"version {entry.version} reads {', '.join(missing)}, which the sidecar's feature "
            "service does not serve"
        )

    def _publish(self, role: Role, model: ServingModel | None) -> None:
        slots = dict(self._slots)
        if model is None:
            slots.pop(role, None)
        else:
            slots[role] = model
        # The swap itself: one reference assignment of a new immutable mapping.
        self._slots = MappingProxyType(slots)
        if self.metrics is not None:
            self.metrics.set_model_version(role, model.version if model is not None else None)

    def _count(self, role: Role, change: SlotChange) -> None:
        if self.metrics is not None:
            self.metrics.model_swaps.labels(role, change.value).inc()
