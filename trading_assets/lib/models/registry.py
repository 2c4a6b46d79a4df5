"""MLflow registration of ONNX signal models, and loading them back by alias for serving.

Each registered version points at one run's ``model/`` artifact folder holding the ONNX file,
the ordered feature list and a metadata JSON (feature service, training data range, checksum).
Promotion uses registry aliases only (``@challenger``, ``@shadow``, ``@canary``,
``@champion``); the deprecated stage API is never touched.

The offline evaluation gate (the ``beats_baselines`` check) records its verdict on the version
it judged (:func:`record_gate_verdict`: version tags ``gate.beats_baselines`` = ``passed`` or
``failed`` and ``gate.reason``). :func:`require_gate_passed` is the one rule every serving alias
goes through: only a version whose verdict is ``passed`` may hold any of them, whoever asks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

if TYPE_CHECKING:  # the exporters (XGBoost, onnxmltools) stay out of serving processes
    from trading_assets.lib.models.onnx_export import ParityReport

ALIASES = ("challenger", "shadow", "canary", "champion")
DEFAULT_EXPERIMENT = "signal-models"
ARTIFACT_DIR = "model"
ONNX_FILE = "model.onnx"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
GATE_CHECK = "beats_baselines"
GATE_TAG = f"gate.{GATE_CHECK}"
GATE_REASON_TAG = "gate.reason"
GATE_RUN_TAG = "gate.dagster_run_id"  # the Dagster run whose check judged the version
PASSED, FAILED = "passed", "failed"
MAX_GATE_REASON_CHARS = 4_000  # MLflow caps a version tag's value at 5,000 characters
SERVER_SCHEMES = ("http", "https")
LOCAL_ARTIFACT_SCHEMES = ("", "file")


class LoadedModel(NamedTuple):
    """What a sidecar needs to serve a version: its number, ONNX bytes, input order, metadata."""

    version: str
    onnx_bytes: bytes
    feature_names: list[str]
    metadata: dict[str, Any]


def _client(tracking_uri: str) -> MlflowClient:
    # The registry lives in the same store as tracking; passing both avoids global mlflow state.
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _iso_utc(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"training data bounds must be timezone-aware, got {value!r}")
    return value.astimezone(dt.UTC).isoformat()


def is_tracking_server(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` names an MLflow server (``http(s)://``) rather than a store this
    process opens itself (a sqlite file, a folder)."""
    return urlsplit(tracking_uri).scheme.lower() in SERVER_SCHEMES


def experiment_artifact_location(tracking_uri: str, artifact_location: str | None) -> str | None:
    """The artifact root to create an experiment with: ``artifact_location`` for a store this
    process opens, None (the server's own default) for a tracking server.

    A server started with ``--serve-artifacts`` roots new experiments at ``mlflow-artifacts:``
    and proxies every upload and download, so its clients need no storage credentials and share
    no disk. Any other root handed to it would be written by each client directly (a local
    folder only that machine sees, or a bucket every client must hold keys for).
    """
    return None if is_tracking_server(tracking_uri) else artifact_location


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        _check_server_experiment(client.tracking_uri, experiment.name, experiment.artifact_location)
        return experiment.experiment_id
    location = experiment_artifact_location(client.tracking_uri, artifact_location)
    return client.create_experiment(name, artifact_location=location)


def _check_server_experiment(tracking_uri: str, name: str, root: str) -> None:
    """Refuse a server's experiment rooted on a client's disk: its artifacts would stay on the
    machine that logged them, out of reach of every other client (a sidecar's model watcher)."""
    if is_tracking_server(tracking_uri) and urlsplit(root).scheme in LOCAL_ARTIFACT_SCHEMES:
        raise ValueError(
            f"experiment {name!r} on {tracking_uri} keeps its artifacts at {root!r}, a local "
            "folder; register under an experiment created by the server (artifacts proxied "
            "through it, mlflow-artifacts:)"
        )


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        client.create_registered_model(name)


def register_model(
    tracking_uri: str,
    name: str,
    onnx_bytes: bytes,
    feature_names: Sequence[str],
    feature_service: str,
    data_start: dt.datetime,
    data_end: dt.datetime,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    *,
    parity_report: ParityReport | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    artifact_location: str | None = None,
) -> ModelVersion:
    """Log a training run with the ONNX artifact and register it as a new version of ``name``.

    The version is registered without any alias and without a gate verdict: an alias needs
    the evaluation gate's ``passed`` first (:func:`require_gate_passed`). A failed
    ``parity_report`` is refused outright so an export that disagrees with its booster never
    reaches the registry. ``artifact_location`` applies only when the experiment is created in
    a store this process opens (a sqlite file locally); it defaults to MLflow's own. A tracking
    server keeps its own default, so artifacts go through the server
    (:func:`experiment_artifact_location`).
    """
    if parity_report is not None and not parity_report.passed:
        raise ValueError(
            f"ONNX parity gate failed (max abs diff {parity_report.max_abs_diff:.3g} > "
            f"{parity_report.tolerance:g}); refusing to register"
        )
    if data_end < data_start:
        raise ValueError("data_end precedes data_start")
    names = list(feature_names)
    metadata = {
        "feature_names": names,
        "feature_count": len(names),
        "feature_service": feature_service,
        "data_start": _iso_utc(data_start),
        "data_end": _iso_utc(data_end),
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
    }
    # Tags make the lineage searchable in the UI; the JSON artifact keeps the full ordered list.
    tags = {k: str(metadata[k]) for k in ("feature_service", "data_start", "data_end")}
    tags |= {"feature_count": str(len(names)), "onnx_sha256": str(metadata["onnx_sha256"])}
    all_metrics = dict(metrics)
    if parity_report is not None:
        all_metrics["onnx_parity_max_abs_diff"] = parity_report.max_abs_diff

    client = _client(tracking_uri)
    run = client.create_run(_experiment_id(client, experiment, artifact_location), tags=tags)
    run_id = run.info.run_id
    try:
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now_ms, 0) for k, v in all_metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / ONNX_FILE).write_bytes(onnx_bytes)
            (folder / FEATURES_FILE).write_text(json.dumps(names))
            (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
            client.log_artifacts(run_id, str(folder), ARTIFACT_DIR)
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)

    _ensure_registered_model(client, name)
    # The concrete artifact URI, not runs:/..., which mlflow resolves via the global tracking URI.
    artifact_root = run.info.artifact_uri
    if artifact_root is None:
        raise RuntimeError(f"run {run_id} has no artifact location")
    source = f"{artifact_root.rstrip('/')}/{ARTIFACT_DIR}"
    return client.create_model_version(name, source, run_id=run_id, tags=tags)


class GateVerdict(NamedTuple):
    """The evaluation gate's verdict on one version: ``passed``, ``failed`` or None (never
    judged), and the gate's reason."""

    version: str
    verdict: str | None
    reason: str

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED

    def summary(self) -> str:
        """The verdict in a few words, e.g. "failed the evaluation gate (beats_baselines)"."""
        gate = f"the evaluation gate ({GATE_CHECK})"
        if self.verdict is None:
            return f"has no verdict from {gate}"
        if self.verdict in (PASSED, FAILED):
            return f"{self.verdict} {gate}"
        return f"has verdict {self.verdict!r} from {gate}, not {PASSED!r}"


class UngatedVersionError(ValueError):
    """A version the evaluation gate did not pass was about to hold a serving alias."""

    def __init__(self, name: str, alias: str, verdict: GateVerdict) -> None:
        self.name, self.alias, self.verdict = name, alias, verdict
        message = f"{name} version {verdict.version} may not hold @{alias}: it {verdict.summary()}"
        super().__init__(message + (f" ({verdict.reason})" if verdict.reason else ""))


def record_gate_verdict(
    tracking_uri: str,
    name: str,
    version: str | int,
    passed: bool,
    reason: str,
    dagster_run_id: str | None = None,
) -> None:
    """Write the evaluation gate's verdict and reason on ``version`` (its MLflow tags)."""
    client = _client(tracking_uri)
    tags = {GATE_TAG: PASSED if passed else FAILED, GATE_REASON_TAG: reason[:MAX_GATE_REASON_CHARS]}
    if dagster_run_id is not None:
        tags[GATE_RUN_TAG] = dagster_run_id
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def gate_verdict(tracking_uri: str, name: str, version: str | int) -> GateVerdict:
    """The verdict recorded on ``version`` (``verdict`` None when no gate judged it)."""
    tags = _client(tracking_uri).get_model_version(name, str(version)).tags or {}
    verdict = tags.get(GATE_TAG)
    return GateVerdict(str(version), verdict, tags.get(GATE_REASON_TAG, ""))


def newest_version(tracking_uri: str, name: str) -> str | None:
    """The highest version number registered under ``name`` (None: none, or no such model)."""
    found = _client(tracking_uri).search_model_versions(
        f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
    )
    return str(found[0].version) if found else None


def require_gate_passed(tracking_uri: str, name: str, alias: str, version: str | int) -> None:
    """Raise :class:`UngatedVersionError` unless the evaluation gate passed ``version``.

    The rule for every serving alias, from every caller: an asset, the rollout sensor, a
    script, the sidecar's model watcher. A version the gate failed, or never judged, may hold
    none of them.
    """
    verdict = gate_verdict(tracking_uri, name, version)
    if not verdict.passed:
        raise UngatedVersionError(name, alias, verdict)


def set_alias(tracking_uri: str, name: str, alias: str, version: str | int) -> None:
    """Point one of the house aliases at ``version`` (moving it off any previous version),
    provided the evaluation gate passed it (:func:`require_gate_passed`)."""
    if alias not in ALIASES:
        raise ValueError(f"unknown alias @{alias}; use one of {', '.join(ALIASES)}")
    require_gate_passed(tracking_uri, name, alias, version)
    _client(tracking_uri).set_registered_model_alias(name, alias, str(version))


def load_by_alias(tracking_uri: str, name: str, alias: str) -> LoadedModel:
    """Fetch the version behind ``name@alias`` with its ONNX bytes, feature order and metadata.

    The ONNX bytes are checked against the checksum recorded at registration, so a sidecar never
    serves an artifact that was replaced or truncated in the artifact store.
    """
    client = _client(tracking_uri)
    return _load(tracking_uri, client.get_model_version_by_alias(name, alias), f"{name}@{alias}")


def load_version(tracking_uri: str, name: str, version: str | int) -> LoadedModel:
    """As :func:`load_by_alias`, for a version given by its number."""
    client = _client(tracking_uri)
    return _load(tracking_uri, client.get_model_version(name, str(version)), name)


def _load(tracking_uri: str, version: ModelVersion, label: str) -> LoadedModel:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=version.source, dst_path=tmp, tracking_uri=tracking_uri
            )
        )
        onnx_bytes = (local / ONNX_FILE).read_bytes()
        feature_names = list(json.loads((local / FEATURES_FILE).read_text()))
        metadata = dict(json.loads((local / METADATA_FILE).read_text()))
    if hashlib.sha256(onnx_bytes).hexdigest() != metadata["onnx_sha256"]:
        raise ValueError(f"{label} (version {version.version}): ONNX checksum mismatch")
    if feature_names != metadata["feature_names"]:
        raise ValueError(f"{label} (version {version.version}): feature lists disagree")
    return LoadedModel(str(version.version), onnx_bytes, feature_names, metadata)
