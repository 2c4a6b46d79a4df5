"""The rollout's state in the MLflow registry: read it, and apply a decision to it.

Everything lives in MLflow, so the rollout survives a restart of Dagster and is visible in the
MLflow UI: aliases say who serves, version tags ``rollout.status``, ``rollout.<role>_since_ns`` and
``rollout.reason`` say how each version fared, since when and why, and the registered-model tag
``rollout.previous_champion`` remembers the champion to roll back to; ``rollout.withdrawn`` names
the champion withdrawn with nothing to roll back to, while no champion serves.

Every alias a decision sets goes through the evaluation gate's rule first
(:func:`trading_assets.lib.models.registry.require_gate_passed`): a version the gate did not
pass is refused before anything is written, and cannot be restored by a rollback either.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from trading_assets.lib.models.registry import require_gate_passed
from trading_assets.lib.models.rollout import (
    MAX_REASON_CHARS,
    PREVIOUS_CHAMPION_TAG,
    REASON_TAG,
    REJECTED_STATUSES,
    STATUS_TAG,
    WITHDRAWN_TAG,
    Decision,
    RegistryState,
    Slot,
    since_tag,
)


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _since(client: MlflowClient, name: str, version: str, role: str) -> int | None:
    value = client.get_model_version(name, version).tags.get(since_tag(role))
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _status(client: MlflowClient, name: str, version: str) -> str | None:
    """The version's rollout status: "" when it has none, None when it is no longer registered."""
    try:
        return client.get_model_version(name, version).tags.get(STATUS_TAG, "")
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise


def _restorable(client: MlflowClient, name: str, version: str | None) -> str | None:
    """``version`` when a rollback may bring it back: still registered, never turned down."""
    if version is None:
        return None
    status = _status(client, name, version)
    return None if status is None or status in REJECTED_STATUSES else version


def read_state(tracking_uri: str, name: str) -> RegistryState:
    """Where ``name``'s aliases point, with the rollout tags; empty when nothing is registered."""
    client = _client(tracking_uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return RegistryState()
        raise
    aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def slot(role: str) -> Slot | None:
        version = aliases.get(role)
        return None if version is None else Slot(version, _since(client, name, version, role))

    challenger = aliases.get("challenger")
    rejected = challenger is not None and _status(client, name, challenger) in REJECTED_STATUSES
    tags = model.tags or {}
    return RegistryState(
        challenger=challenger,
        shadow=slot("shadow"),
        canary=slot("canary"),
        champion=slot("champion"),
        previous_champion=_restorable(client, name, tags.get(PREVIOUS_CHAMPION_TAG)),
        challenger_rejected=rejected,
        withdrawn=tags.get(WITHDRAWN_TAG),
    )


def restore_problem(tracking_uri: str, name: str, version: str) -> str | None:
    """Why ``version`` could not serve again, or None when the sidecar would take it: the
    evaluation gate passed it, and its artifact downloads, matches the recorded checksum and
    feature list, opens in ONNX Runtime and scores a zero vector to a finite number (the
    sidecar's own load and warm-up)."""
    # ONNX Runtime and the artifact download are needed only when a rollback is checked.
    from trading_assets.lib.models.inference import open_servable
    from trading_assets.lib.models.registry import load_version

    try:
        require_gate_passed(tracking_uri, name, "champion", version)
        loaded = load_version(tracking_uri, name, version)
        open_servable(loaded.onnx_bytes, loaded.feature_names, loaded.version)
    except Exception as exc:  # any failure means it cannot serve; the reason is recorded
        return f"{type(exc).__name__}: {exc}"
    return None


def apply_decision(tracking_uri: str, name: str, decision: Decision) -> None:
    """Carry out a decision: tags first, then the new aliases, then the alias deletions, then
    any alias left on the version it turned down.

    A new alias on a version the evaluation gate did not pass raises
    :class:`~trading_assets.lib.models.registry.UngatedVersionError` before anything is
    written. Tags go first so a crash midway never leaves a serving alias without its
    ``since``; new aliases are set before old ones are deleted so a version moving from one slot
    to the next (shadow → canary → champion) is never out of service in between.
    """
    for alias, version in decision.set_aliases.items():
        require_gate_passed(tracking_uri, name, alias, version)
    client = _client(tracking_uri)
    version_tags = {version: dict(tags) for version, tags in decision.version_tags.items()}
    for version in version_tags:  # why each version's status changed, readable in MLflow's UI
        version_tags[version][REASON_TAG] = decision.reason[:MAX_REASON_CHARS]
    for version, tags in version_tags.items():
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    if decision.previous_champion is not None:
        client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, decision.previous_champion)
    if decision.forget_previous_champion:
        client.delete_registered_model_tag(name, PREVIOUS_CHAMPION_TAG)
    if decision.withdrawn is not None:
        client.set_registered_model_tag(name, WITHDRAWN_TAG, decision.withdrawn)
    if decision.clear_withdrawn:
        client.delete_registered_model_tag(name, WITHDRAWN_TAG)
    for alias, version in decision.set_aliases.items():
        client.set_registered_model_alias(name, alias, version)
    for alias in decision.delete_aliases:
        client.delete_registered_model_alias(name, alias)
    if decision.turned_down is not None:
        aliases = client.get_registered_model(name).aliases or {}
        for alias, version in aliases.items():
            if str(version) == decision.turned_down:
                client.delete_registered_model_alias(name, alias)
