"""An MLflow server that is down: the Dagster side's clients give up within seconds, bounded by
the settings (``MLFLOW_HTTP_REQUEST_*``) the MLflow resource hands to MLflow, rather than after
MLflow's own ~4 minutes of retries; and what they raise reads as a store outage, which the
steps retry. A port where nothing listens is what a client sees while its server is down."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException, RestException

from trading_assets.lib.models.registry import newest_version
from trading_assets.lib.settings import Settings, SettingsError
from trading_assets.lib.store_outages import outage_cause
from trading_assets.resources import build_resources
from trading_assets.resources.mlflow import MlflowResource, client_limits
from trading_assets.servers import LOOPBACK, free_port

pytestmark = pytest.mark.faults

BOUNDS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)
# MLflow's own retries of a server that is down wait about 4 minutes (7 retries, backoff factor
# 2, capped at 120 s); the settings' bounds fail in about 3 s. Far above the one, far below the
# other: the call did not hang.
NO_HANG_S = 60.0


@pytest.fixture
def no_bounds_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment without the bounds (restored afterwards)."""
    for name in BOUNDS:
        monkeypatch.delenv(name, raising=False)


def local_settings(tmp_path: Path, **variables: str) -> Settings:
    return Settings.from_environ({"TRADING_DATA_DIR": str(tmp_path), **variables})


def test_a_registry_call_through_the_resource_gives_up_on_a_server_that_is_down(
    tmp_path: Path, no_bounds_set: None
):
    # Arrange: the resource as the code location builds it, pointed at a server that is down
    settings = local_settings(tmp_path)
    resource = MlflowResource(
        tracking_uri=f"http://{LOOPBACK}:{free_port()}",
        models_uri=str(tmp_path / "models"),
        **client_limits(settings),
    )

    # Act: twice, timing the second (MLflow's first request imports for seconds under load)
    uri = resource.ready_uri()
    with pytest.raises(MlflowException):
        newest_version(uri, "signal")
    started = time.monotonic()
    with pytest.raises(MlflowException) as raised:
        newest_version(uri, "signal")
    waited_s = time.monotonic() - started

    # Assert: the settings' bounds reached MLflow, the call gave up, and its error is an outage
    assert {name: os.environ[name] for name in BOUNDS} == {n: settings.tuning(n) for n in BOUNDS}
    assert waited_s < NO_HANG_S
    assert outage_cause(raised.value) is not None


def test_the_settings_bounds_reach_the_mlflow_resource(tmp_path: Path):
    settings = local_settings(
        tmp_path,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="4",
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="0.5",
        MLFLOW_HTTP_REQUEST_TIMEOUT="12",
    )

    mlflow = build_resources(settings)["mlflow"]

    assert mlflow.client_environment() == {name: settings.tuning(name) for name in BOUNDS}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2.5"),
        ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "-1"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "0"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon"),
    ],
)
def test_a_malformed_bound_is_refused_in_one_line_naming_its_variable(
    tmp_path: Path, variable: str, value: str
):
    settings = local_settings(tmp_path, **{variable: value})

    with pytest.raises(SettingsError) as raised:
        build_resources(settings)

    message = str(raised.value)
    assert message.startswith(f"{variable}: ") and repr(value) in message
    assert "\n" not in message


def test_an_mlflow_server_error_answer_is_an_outage_and_its_not_found_is_not():
    unavailable = RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "db down"})
    missing = RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"})

    assert outage_cause(unavailable) is unavailable
    assert outage_cause(missing) is None
