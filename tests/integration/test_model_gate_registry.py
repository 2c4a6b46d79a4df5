"""The registry's one rule for serving aliases, in a real sqlite MLflow: only a version whose
evaluation gate verdict is ``passed`` may hold @challenger, @shadow, @canary or @champion."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from mlflow import MlflowClient

from trading_assets.lib.models.registry import (
    ALIASES,
    GATE_REASON_TAG,
    GATE_TAG,
    UngatedVersionError,
    gate_verdict,
    record_gate_verdict,
    register_model,
    set_alias,
)

_names = itertools.count()


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One store for the module (MLflow's sqlite schema takes seconds to create); a name per test.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def register(uri: str, name: str, artifacts: Path) -> str:
    day = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    version = register_model(
        uri, name, b"onnx bytes", ["mom_10s"], "signal_v1", day, day + dt.timedelta(days=1),
        metrics={}, params={}, artifact_location=artifacts.as_uri(),
    )  # fmt: skip
    return str(version.version)


@pytest.mark.parametrize("verdict", [None, False], ids=["never-judged", "failed"])
@pytest.mark.parametrize("alias", ALIASES)
def test_set_alias_refuses_a_version_the_gate_did_not_pass(tracking_uri, tmp_path, alias, verdict):
    name = f"signal_gate_{next(_names)}"
    passed = register(tracking_uri, name, tmp_path)
    record_gate_verdict(tracking_uri, name, passed, True, "IC 0.05 > 0.01")
    set_alias(tracking_uri, name, alias, passed)
    ungated = register(tracking_uri, name, tmp_path)
    if verdict is not None:
        record_gate_verdict(tracking_uri, name, ungated, verdict, "IC 0.001 < 0.002")

    with pytest.raises(UngatedVersionError) as refused:
        set_alias(tracking_uri, name, alias, ungated)

    why = "has no verdict from" if verdict is None else "failed"
    message = str(refused.value)
    assert message.startswith(f"{name} version {ungated} may not hold @{alias}: it {why}")
    assert ("IC 0.001 < 0.002" in message) is (verdict is False)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    aliases = client.get_registered_model(name).aliases
    assert {a: str(v) for a, v in aliases.items()} == {alias: passed}


def test_a_verdict_is_written_on_the_version_and_read_back(tracking_uri, tmp_path):
    name = f"signal_gate_{next(_names)}"
    version = register(tracking_uri, name, tmp_path)
    before = gate_verdict(tracking_uri, name, version)

    record_gate_verdict(tracking_uri, name, version, False, "IC 0.001 < 0.002", "run-1")
    failed = gate_verdict(tracking_uri, name, version)
    record_gate_verdict(tracking_uri, name, version, True, "IC 0.05 > 0.01")
    passed = gate_verdict(tracking_uri, name, version)

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    tags = client.get_model_version(name, version).tags
    assert (before.verdict, before.passed) == (None, False)
    assert (failed.verdict, failed.reason, failed.passed) == ("failed", "IC 0.001 < 0.002", False)
    assert (passed.verdict, passed.passed) == ("passed", True)
    assert (tags[GATE_TAG], tags[GATE_REASON_TAG]) == ("passed", "IC 0.05 > 0.01")
