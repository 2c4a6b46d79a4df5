"""deploy/helm/values.yaml: valid for Dagster's official chart, and the same Dagster instance as
dagster_home/dagster.prod.yaml (run queue, run retries, compute logs), on Kubernetes.

The chart's values schema (../shared/schemas/dagster-helm-values.schema.json) refers to
Kubernetes objects on kubernetesjsonschema.dev (v1.18.0, which is offline here); those references
resolve to the definitions ``kubernetes_validate`` bundles for the version the manifests target
(non-strict, as the chart's references are). Helm validates the values *merged over the chart's
defaults*, which are not in this repository, so the schema is applied as that merge sees a values
file: maps merge key by key (an object reached through maps may leave out the keys the defaults
hold, so its ``required`` is lifted), while lists replace the default whole (a list item keeps
every ``required`` of its own, nested objects included). Unknown keys fail everywhere.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from tests.deploy.images import DOCKERFILES, command, read_stages

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "schemas" / "dagster-helm-values.schema.json"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
PROD_INSTANCE = ROOT / "dagster_home" / "dagster.prod.yaml"
KUBERNETES_VERSION = "1.33.0"  # the version deploy/k8s is validated against
KUBERNETES_SCHEMAS = "https://kubernetesjsonschema.dev/"
MERGED = "__merged"  # suffix of a definition as it applies under a merged map

pytestmark = pytest.mark.skipif(
    not SCHEMA.exists(), reason=f"the chart's values schema is absent ({SCHEMA}: ../shared)"
)


def merge_aware(schema: dict[str, Any]) -> dict[str, Any]:
    """The chart's schema as it applies to a values file Helm merges over the chart's defaults."""
    definitions = schema["definitions"]
    root = _lifted({k: v for k, v in schema.items() if k != "definitions"})
    root["definitions"] = {
        **definitions,
        **{name + MERGED: _lifted(definition) for name, definition in definitions.items()},
    }
    return root


def _lifted(node: Any) -> Any:
    """A schema under merged maps: no ``required``; local references to the lifted definitions;
    ``items`` (a list the values replace whole) left as the chart wrote it."""
    if not isinstance(node, dict):
        return node
    lifted: dict[str, Any] = {}
    for keyword, value in node.items():
        if keyword == "required":
            continue
        if keyword == "$ref" and value.startswith("#/definitions/"):
            lifted[keyword] = value + MERGED
        elif keyword in ("properties", "patternProperties"):
            lifted[keyword] = {name: _lifted(sub) for name, sub in value.items()}
        elif keyword in ("anyOf", "allOf", "oneOf"):
            lifted[keyword] = [_lifted(sub) for sub in value]
        elif keyword == "additionalProperties" and isinstance(value, dict):
            lifted[keyword] = _lifted(value)
        else:
            lifted[keyword] = value
    return lifted


def kubernetes_definitions(uri: str) -> Resource:
    """The bundled Kubernetes definitions, for any ``…/_definitions.json`` the chart names."""
    if not (uri.startswith(KUBERNETES_SCHEMAS) and uri.endswith("/_definitions.json")):
        raise NoSuchResource(ref=uri)
    bundled = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    text = (bundled / f"v{KUBERNETES_VERSION}-local" / "_definitions.json").read_text()
    defs = json.loads(text)["$defs"]
    # The chart points into `definitions`; the bundled file's own references into `$defs`.
    return Resource.from_contents({"definitions": defs, "$defs": defs}, DRAFT202012)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    registry: Registry = Registry(retrieve=kubernetes_definitions)
    return jsonschema.Draft7Validator(merge_aware(schema), registry=registry)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    found = validator.iter_errors(document)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in found]


def test_the_values_validate_against_the_charts_schema(validator, values):
    assert errors(validator, values) == []


def test_the_schema_check_refuses_an_unknown_key(validator, values):
    broken = copy.deepcopy(values)
    broken["dagsterWebserver"]["envSecret"] = [{"name": "trading-settings"}]  # not envSecrets

    assert any("envSecret" in e for e in errors(validator, broken))


def test_the_schema_check_holds_a_list_item_to_every_required_key(validator, values):
    broken = copy.deepcopy(values)
    del broken["dagster-user-deployments"]["deployments"][0]["port"]

    assert any("'port' is a required property" in e for e in errors(validator, broken))


def test_the_schema_check_reads_the_kubernetes_definitions(validator, values):
    broken = copy.deepcopy(values)
    broken["dagsterWebserver"]["readinessProbe"]["httpGet"]["port"] = {"number": 3000}
    broken["dagsterDaemon"]["securityContext"]["runAsUser"] = "trading"

    found = errors(validator, broken)
    assert any(e.startswith("dagsterWebserver.readinessProbe.httpGet.port") for e in found)
    assert any(e.startswith("dagsterDaemon.securityContext.runAsUser") for e in found)


def test_runs_use_the_kubernetes_run_launcher_and_the_code_location_is_a_grpc_server(values):
    deployments = values["dagster-user-deployments"]
    code = deployments["deployments"]
    image_argv = command(read_stages(DOCKERFILES["dagster"])[-1])

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert deployments["enabled"] and len(code) == 1
    assert code[0]["image"]["repository"] == "trading-assets-dagster"
    assert code[0]["dagsterApiGrpcArgs"] == ["-m", _after(image_argv, "-m")]
    assert code[0]["port"] == int(_after(image_argv, "-p"))
    assert code[0]["includeConfigInLaunchedRuns"]["enabled"]


def test_dagster_uses_an_external_postgresql_whose_password_is_a_secret(values):
    postgresql = values["postgresql"]

    assert postgresql["enabled"] is False and postgresql["postgresqlHost"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in postgresql  # the Secret holds it, not the values


def test_every_dagster_pod_takes_its_environment_from_secrets_and_config_maps(values):
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    pods = {
        "webserver": values["dagsterWebserver"],
        "daemon": values["dagsterDaemon"],
        "code server": values["dagster-user-deployments"]["deployments"][0],
        "runs": launcher,
    }
    for pod, section in pods.items():
        assert section["envSecrets"] and section["envConfigMaps"], pod
        assert all(ref.get("name") for ref in section["envSecrets"] + section["envConfigMaps"])


def test_the_run_queue_and_retries_are_those_of_the_production_instance(values):
    prod = yaml.safe_load(PROD_INSTANCE.read_text())
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    expected = prod["run_coordinator"]["config"]
    backfill = {"key": "dagster/backfill", "limit": _backfill_limit(expected)}

    assert daemon["runCoordinator"]["enabled"]
    assert daemon["runCoordinator"]["type"] == prod["run_coordinator"]["class"]
    assert queue["maxConcurrentRuns"] == expected["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == expected["tag_concurrency_limits"]
    assert backfill["limit"] < queue["maxConcurrentRuns"]  # the live partition keeps a slot
    assert daemon["runRetries"] == {
        "enabled": prod["run_retries"]["enabled"],
        "maxRetries": prod["run_retries"]["max_retries"],
    }
    assert daemon["runMonitoring"]["enabled"] == prod["run_monitoring"]["enabled"]
    extra = values["additionalInstanceConfig"]
    assert extra["concurrency"] == prod["concurrency"]


def test_compute_logs_go_to_s3_as_in_the_production_instance(values):
    prod = yaml.safe_load(PROD_INSTANCE.read_text())["compute_logs"]
    manager = values["computeLogManager"]
    config = manager["config"]["s3ComputeLogManager"]

    assert manager["type"] == prod["class"] == "S3ComputeLogManager"
    assert config["bucket"] == prod["config"]["bucket"]
    assert config["prefix"] == prod["config"]["prefix"]
    assert config["endpointUrl"] == prod["config"]["endpoint_url"]
    assert config["uploadInterval"] == prod["config"]["upload_interval"]


def test_every_dagster_pod_runs_as_the_images_user(values):
    uid = _image_user()
    sections = [
        values["dagsterWebserver"],
        values["dagsterDaemon"],
        values["dagster-user-deployments"]["deployments"][0],
    ]
    run_pod = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    for section in sections:
        assert section["podSecurityContext"]["runAsNonRoot"]
        assert section["podSecurityContext"]["runAsUser"] == uid
        assert section["securityContext"]["allowPrivilegeEscalation"] is False
    assert run_pod["securityContext"]["runAsUser"] == uid
    assert values["dagsterWebserver"]["service"]["port"] >= 1024  # a user binds no port below


def _after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _backfill_limit(config: dict[str, Any]) -> int:
    limits = config["tag_concurrency_limits"]
    return next(limit["limit"] for limit in limits if limit["key"] == "dagster/backfill")


def _image_user() -> int:
    final = read_stages(DOCKERFILES["dagster"])[-1]
    user = final.arguments("USER")[-1]
    match = re.match(r"(\d+)", user)
    assert match, f"the image's USER is not numeric: {user}"
    return int(match[1])
