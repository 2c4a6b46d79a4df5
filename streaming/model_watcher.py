"""``python -m streaming.model_watcher``: a registered model's aliases, mirrored from MLflow.

The sidecar's serving process never imports MLflow: its client and stores alone add about 100 MB
to a process that already holds Feast, Polars and onnxruntime. This small child process does
the registry side instead (the sidecar starts and supervises it, see
:mod:`streaming.watcher_process`). Every ``--poll-s`` seconds it reads where the aliases point
(one ``get_registered_model`` call) and, for an alias that moved, fetches that version
(``load_by_alias``: artifact download, checksum against the registration) into the local mirror
(:mod:`streaming.model_files`), then replaces the manifest. The sidecar watches the manifest and
hot-swaps (:class:`streaming.inference.ModelSlots`).

* A fetch that fails is written as the role's error and retried at the next poll; the sidecar
  keeps serving its old model and counts the failure.
* A version the evaluation gate did not pass is never fetched, whoever pointed an alias at it
  (:func:`trading_assets.lib.models.registry.require_gate_passed`): the role's error says why.
  The gate is asked at every poll, for versions already mirrored as well, so one mirrored
  before it had a verdict, or whose verdict turned ``failed`` since, leaves the manifest the
  same way. A gate that cannot be asked keeps a mirrored version (an outage, as below).
* With no ``@champion`` alias, the manifest names the newest registered version and the gate's
  verdict on it, which the sidecar gives as the reason it serves nothing.
* An alias removed in the registry leaves the manifest: the sidecar empties that slot.
* A registry that cannot be reached changes nothing but the manifest's ``registry_error``,
  written within seconds (``SERVER_REQUEST_DEFAULTS`` bound MLflow's retries of a server).
* A registered model the registry does not know: nothing to serve while nothing was mirrored
  yet. Once something was, a vanished model more likely means a misconfigured or reset store
  than a deliberate deletion, so it is treated as an outage and the roles are kept.

The watcher ends with its parent: the kernel sends it SIGTERM when the parent dies, and it
checks its parent's pid at every poll as well.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from streaming.model_files import (
    MANIFEST_FILE,
    Manifest,
    MirrorEntry,
    NewestVersion,
    mirror_model,
    prune,
    read_manifest,
    write_manifest,
)
from streaming.predictions import ROLES
from trading_assets.lib.models.registry import (
    GATE_CHECK,
    LoadedModel,
    UngatedVersionError,
    gate_verdict,
    load_by_alias,
    newest_version,
    require_gate_passed,
)
from trading_assets.lib.settings import BY_NAME, MLFLOW_REQUEST_BOUNDS

log = logging.getLogger(__name__)
Loader = Callable[[str, str, str], LoadedModel]
_PR_SET_PDEATHSIG = 1
# Requests to an MLflow server: the settings' bounds unless the environment sets them. MLflow's
# own defaults retry an unreachable server seven times, backing off to a minute and more: one
# poll, and with it the manifest's registry_error, would hang for over four minutes. The next
# poll is the retry here.
SERVER_REQUEST_DEFAULTS = {name: BY_NAME[name].prod or "" for name in MLFLOW_REQUEST_BOUNDS}


class ModelWatcher:
    """Keeps one model's mirror directory in step with its aliases in the MLflow registry."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        directory: Path,
        *,
        roles: Sequence[str] = ROLES,
        loader: Loader = load_by_alias,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.directory = directory
        self.roles = tuple(roles)
        self._loader = loader

    def sync(self) -> Manifest:
        """Poll the registry once; rewrite the manifest when anything changed. Returns it."""
        current = self._current()
        try:
            targets = self._alias_targets(current)
            newest = None if "champion" in targets else self._newest()
        except Exception as exc:  # network, store or auth errors: the mirror stays as it is
            log.warning("model registry poll failed for %s: %s", self.model_name, exc)
            error = f"{type(exc).__name__}: {exc}"
            return self._write(current, dataclasses.replace(current, registry_error=error))
        roles = {
            role: self._entry(role, target, current.roles.get(role))
            for role in self.roles
            if (target := targets.get(role)) is not None
        }
        return self._write(current, Manifest(self.model_name, roles, newest=newest))

    def run(self, poll_s: float, stop: threading.Event, parent_pid: int | None = None) -> None:
        """Sync every ``poll_s`` seconds until ``stop`` is set or the parent process is gone."""
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("parent %s is gone: model watcher exits", parent_pid)
                return
            try:
                self.sync()
            except Exception:  # a bug in one poll must not end the mirror for good
                log.exception("model mirror sync for %s failed unexpectedly", self.model_name)
            stop.wait(poll_s)

    def _current(self) -> Manifest:
        try:
            manifest = read_manifest(self.directory)
        except Exception as exc:  # unreadable: the registry holds everything needed to rebuild
            log.warning("ignoring unreadable %s: %s", self.directory / MANIFEST_FILE, exc)
            manifest = None
        if manifest is None or manifest.model != self.model_name:
            return Manifest(self.model_name)
        return manifest

    def _alias_targets(self, current: Manifest) -> dict[str, str]:
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            registered = client.get_registered_model(self.model_name)
        except MlflowException as exc:
            missing = exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)
            if missing and not any(entry.servable for entry in current.roles.values()):
                return {}
            raise
        return {alias: str(version) for alias, version in (registered.aliases or {}).items()}

    def _newest(self) -> NewestVersion | None:
        version = newest_version(self.tracking_uri, self.model_name)
        if version is None:
            return None
        verdict = gate_verdict(self.tracking_uri, self.model_name, version)
        return NewestVersion(version, verdict.verdict, GATE_CHECK, verdict.reason)

    def _entry(self, role: str, target: str, previous: MirrorEntry | None) -> MirrorEntry:
        mirrored = (
            previous
            if previous is not None
            and previous.servable
            and previous.version == target
            and (self.directory / str(previous.onnx)).exists()
            else None
        )
        try:
            # Asked at every poll, before any download, and for a version already mirrored
            # too: it may have been mirrored before it had a verdict, or its verdict may have
            # turned since. A refused version costs one call per poll.
            require_gate_passed(self.tracking_uri, self.model_name, role, target)
            if mirrored is not None:
                return mirrored
            loaded = self._loader(self.tracking_uri, self.model_name, role)
            if loaded.version != target:  # the alias moved in between
                require_gate_passed(self.tracking_uri, self.model_name, role, loaded.version)
            entry = mirror_model(
                self.directory,
                loaded.version,
                loaded.onnx_bytes,
                loaded.feature_names,
                loaded.metadata,
            )
        except UngatedVersionError as refused:
            entry = MirrorEntry(refused.verdict.version, error=f"it {refused.verdict.summary()}")
            if entry != previous:  # said once, not at every poll
                log.error("not serving %s", refused)
            return entry
        except Exception as exc:
            if mirrored is not None:  # the gate could not be asked: an outage
                log.warning("asking the gate about %s version %s failed, keeping it: %s",
                            self.model_name, target, exc)  # fmt: skip
                return mirrored
            log.error("fetching %s@%s (version %s) failed: %s", self.model_name, role, target, exc)
            return MirrorEntry(target, error=f"{type(exc).__name__}: {exc}")
        log.info("mirrored %s@%s version %s", self.model_name, role, entry.version)
        return entry

    def _write(self, current: Manifest, new: Manifest) -> Manifest:
        if new != current or not (self.directory / MANIFEST_FILE).exists():
            write_manifest(self.directory, new)
            # The replaced manifest's files stay one round: a reader may have just read it.
            prune(self.directory, keep=new.files() | current.files())
        return new


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies, so a SIGKILLed sidecar leaves no
    watcher behind; a parent already gone before the request ends the watcher at once."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.model_watcher",
        description="Mirror a registered model's aliases from MLflow into a local directory.",
    )
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--poll-s", type=float, default=10.0)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A progress bar per download only clutters the sidecar's log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, value in SERVER_REQUEST_DEFAULTS.items():
        os.environ.setdefault(name, value)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    args.dir.mkdir(parents=True, exist_ok=True)
    watcher = ModelWatcher(args.tracking_uri, args.model_name, args.dir)
    watcher.run(args.poll_s, stop, args.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
