"""The local model mirror: written by the model watcher process, read by the serving sidecar.

The watcher (:mod:`streaming.model_watcher`) is the only process that talks to MLflow; the
sidecar only reads files, so it never imports MLflow. One directory per registered model::

    <data root>/models/<model name>/manifest.json   where every alias points, and what it needs
    <data root>/models/<model name>/v<N>.onnx       version N's ONNX bytes, as registered

The manifest maps each alias role to an entry: a servable version (its ONNX file, the file's
SHA-256, the ordered feature names and the registered metadata) or a version the watcher could
not fetch, or refused because the evaluation gate did not pass it (its error). When no
``@champion`` alias exists, ``newest`` names the newest registered version and the evaluation
gate's verdict on it, so the sidecar can say why it serves nothing (:func:`no_champion_reason`).
``registry_error`` says the last registry poll failed, in which case the roles are the ones last
seen. Every file is written under a temporary name, fsynced and renamed
into place, and an ONNX file is complete before any manifest names it: a reader sees a whole old
file or a whole new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

MANIFEST_FILE = "manifest.json"
MODELS_DIR = "models"
_TMP_PREFIX = ".tmp-"
_TMP_STALE_S = 300.0  # older than any write in progress


class LocalModel(NamedTuple):
    """One version read back from the mirror: what a serving slot is built from."""

    version: str
    onnx_bytes: bytes
    feature_names: list[str]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class MirrorEntry:
    """Where one alias points: a servable version (``onnx`` set) or a failed fetch (``error``)."""

    version: str
    onnx: str | None = None
    sha256: str | None = None
    feature_names: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def servable(self) -> bool:
        return self.onnx is not None and self.error is None

    def to_json(self) -> dict[str, Any]:
        if not self.servable:
            return {"version": self.version, "error": self.error}
        return {
            "version": self.version,
            "onnx": self.onnx,
            "sha256": self.sha256,
            "feature_names": list(self.feature_names),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MirrorEntry:
        if data.get("onnx") is None:
            return cls(str(data["version"]), error=str(data.get("error") or "no ONNX file"))
        return cls(
            version=str(data["version"]),
            onnx=str(data["onnx"]),
            sha256=str(data["sha256"]),
            feature_names=tuple(data["feature_names"]),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class NewestVersion:
    """The newest registered version and the evaluation gate's verdict on it (``passed``,
    ``failed`` or None: not judged) with the gate's check name and reason."""

    version: str
    verdict: str | None
    check: str
    reason: str = ""

    def describe(self) -> str:
        gate = f"the evaluation gate ({self.check})"
        if self.verdict == "passed":
            return f"newest version {self.version} passed {gate} and awaits its rollout"
        if self.verdict is None:
            return f"newest version {self.version} has no verdict from {gate} yet"
        return f"newest version {self.version} {self.verdict} {gate}"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "verdict": self.verdict,
            "check": self.check,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NewestVersion:
        verdict, reason = data.get("verdict"), str(data.get("reason") or "")
        return cls(str(data["version"]), verdict, str(data["check"]), reason)


@dataclass(frozen=True)
class Manifest:
    """The whole mirror state of one registered model."""

    model: str
    roles: Mapping[str, MirrorEntry] = field(default_factory=dict)
    registry_error: str | None = None
    newest: NewestVersion | None = None  # read only while no @champion alias exists

    def files(self) -> set[str]:
        """The ONNX files this manifest names."""
        return {e.onnx for e in self.roles.values() if e.onnx is not None}

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "registry_error": self.registry_error,
            "roles": {role: entry.to_json() for role, entry in sorted(self.roles.items())},
            "newest": None if self.newest is None else self.newest.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        roles = {role: MirrorEntry.from_json(entry) for role, entry in data["roles"].items()}
        newest = data.get("newest")
        return cls(
            str(data["model"]),
            roles,
            data.get("registry_error"),
            None if newest is None else NewestVersion.from_json(newest),
        )


def no_champion_reason(manifest: Manifest | None, load_error: str | None = None) -> str:
    """Why no @champion serves, as the mirror tells it (``load_error``: why the sidecar could
    not load a mirrored champion)."""
    if manifest is None:
        return "no @champion: the model watcher has not mirrored the registry yet"
    entry = manifest.roles.get("champion")
    if entry is not None and not entry.servable:
        return f"no @champion: version {entry.version} is not served: {entry.error}"
    if entry is not None and load_error is not None:
        return f"no @champion: version {entry.version} did not load: {load_error}"
    if entry is not None:
        return f"no @champion: version {entry.version} is not loaded yet"
    if manifest.registry_error is not None:
        return f"no @champion: the model registry did not answer ({manifest.registry_error})"
    if manifest.newest is None:
        return "no @champion: no model version is registered"
    return f"no @champion: {manifest.newest.describe()}"


def mirror_dir(data_root: Path, model_name: str) -> Path:
    """The mirror directory of ``model_name`` under a sidecar's data root."""
    return data_root / MODELS_DIR / model_name


def onnx_file_name(version: str) -> str:
    return f"v{version}.onnx"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must survive a crash too, or a manifest could name a lost file.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    body = json.dumps(manifest.to_json(), indent=1, sort_keys=True).encode()
    write_atomic(directory / MANIFEST_FILE, body)


def manifest_signature(directory: Path) -> tuple[int, int, int] | None:
    """A cheap fingerprint of the manifest file (None when absent): it changes on every rewrite."""
    try:
        stat = (directory / MANIFEST_FILE).stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def read_manifest(directory: Path) -> Manifest | None:
    """The manifest, or None when the watcher has written none yet."""
    try:
        text = (directory / MANIFEST_FILE).read_text()
    except FileNotFoundError:
        return None
    return Manifest.from_json(json.loads(text))


def read_model(directory: Path, entry: MirrorEntry) -> LocalModel:
    """A servable entry's model, its ONNX bytes checked against the manifest's checksum."""
    if entry.onnx is None:
        raise ValueError(f"version {entry.version} was not mirrored: {entry.error}")
    onnx_bytes = (directory / entry.onnx).read_bytes()
    if hashlib.sha256(onnx_bytes).hexdigest() != entry.sha256:
        raise ValueError(f"version {entry.version}: {entry.onnx} checksum mismatch")
    return LocalModel(entry.version, onnx_bytes, list(entry.feature_names), dict(entry.metadata))


def mirror_model(
    directory: Path,
    version: str,
    onnx_bytes: bytes,
    feature_names: Sequence[str],
    metadata: Mapping[str, Any],
) -> MirrorEntry:
    """Write a version's ONNX file (unless an identical one is there) and return its entry."""
    name = onnx_file_name(version)
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    path = directory / name
    if not (path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == digest):
        write_atomic(path, onnx_bytes)
    return MirrorEntry(version, name, digest, tuple(feature_names), dict(metadata))


def prune(directory: Path, keep: set[str]) -> None:
    """Remove ONNX files not in ``keep``, and temporary files a crashed writer left behind."""
    now = time.time()
    for path in directory.iterdir():
        if path.name.startswith(_TMP_PREFIX):
            try:
                if now - path.stat().st_mtime > _TMP_STALE_S:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:  # renamed into place meanwhile
                pass
        elif path.suffix == ".onnx" and path.name not in keep:
            path.unlink(missing_ok=True)
