"""deploy/k8s: every manifest valid for Kubernetes 1.33 (``kubernetes_validate``'s strict
schemas, which refuse unknown fields), and the sidecars deployed as the issue asks: a StatefulSet
per instrument group with its landing volume, probes, resources, a PodDisruptionBudget, Services and
Prometheus' scrape annotations, as a user that is not root."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from trading_assets.lib.settings import BY_NAME, VARIABLES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
PLACEHOLDER = "change-me"
SIDECAR_PORT = int(BY_NAME["SIDECAR_PORT"].prod or 0)  # the settings' production default


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every object the kustomization applies, with the file it comes from."""
    return [
        (name, doc)
        for name in kustomization()["resources"]
        for doc in yaml.safe_load_all((K8S / name).read_text())
        if doc
    ]


def objects(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    return next(doc for doc in objects(kind) if doc["metadata"]["name"] == name)


def sidecars() -> list[dict[str, Any]]:
    return [s for s in objects("StatefulSet") if _container(s)["image"].startswith("trading-")]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("source,doc", manifests(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_manifest_is_valid_for_kubernetes(source, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_strict_check_refuses_a_misspelt_field():
    statefulset = copy.deepcopy(sidecars()[0])
    _container(statefulset)["livenesProbe"] = _container(statefulset).pop("livenessProbe")

    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_applies_every_manifest_of_the_folder():
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization()["resources"]) == files
    assert kustomization()["namespace"]
    images = {image["name"] for image in kustomization()["images"]}
    used = {c["image"].split(":")[0] for _, doc in manifests() for c in _containers(doc)}
    assert used <= images  # every image's registry and tag is set in one place


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    template = doc.get("spec", {}).get("template", {})
    return template.get("spec", {}).get("containers", [])


def test_one_sidecar_statefulset_per_instrument_group_covers_the_instruments_once():
    config = named("ConfigMap", "trading-config")["data"]
    groups = [_env(_container(s))["TRADING_INSTRUMENTS"].split(",") for s in sidecars()]
    flat = [instrument for group in groups for instrument in group]

    assert len(groups) >= 2
    assert len(flat) == len(set(flat))  # no instrument served twice
    assert sorted(flat) == sorted(config["TRADING_INSTRUMENTS"].split(","))


@pytest.mark.parametrize("statefulset", sidecars(), ids=lambda s: s["metadata"]["name"])
def test_a_sidecar_lands_on_its_own_volume_and_is_probed_on_health_and_ready(statefulset):
    spec = statefulset["spec"]
    container = _container(statefulset)
    claims = {claim["metadata"]["name"]: claim for claim in spec["volumeClaimTemplates"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert spec["replicas"] == 1
    assert set(claims) & set(mounts), "the landing claim is mounted"
    landing = next(iter(set(claims) & set(mounts)))
    assert mounts[landing] == _env(container)["TRADING_DATA_DIR"]
    assert claims[landing]["spec"]["resources"]["requests"]["storage"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports  # by the port's name
    assert ports[container["livenessProbe"]["httpGet"]["port"]] == SIDECAR_PORT


@pytest.mark.parametrize("statefulset", sidecars(), ids=lambda s: s["metadata"]["name"])
def test_a_sidecar_has_resources_a_budget_services_and_scrape_annotations(statefulset):
    spec = statefulset["spec"]
    labels = spec["template"]["metadata"]["labels"]
    container = _container(statefulset)
    budgets = [
        b
        for b in objects("PodDisruptionBudget")
        if _selects(b["spec"]["selector"]["matchLabels"], labels)
    ]
    services = [s for s in objects("Service") if _selects(s["spec"].get("selector", {}), labels)]
    annotations = spec["template"]["metadata"]["annotations"]
    http = next(p for p in container["ports"] if p["name"] == "http")

    assert _selects(spec["selector"]["matchLabels"], labels)
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] >= 1
    assert spec["serviceName"] in {s["metadata"]["name"] for s in services}
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(http["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


def workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if "template" in doc.get("spec", {})]


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_every_pod_runs_as_a_user_that_is_not_root(workload):
    template = workload["spec"]["template"]
    pod = template["spec"]["securityContext"]

    assert pod["runAsNonRoot"] and pod["runAsUser"] != 0
    for container in template["spec"]["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_the_secret_is_a_template_holding_the_secret_settings_and_no_other():
    settings = named("Secret", "trading-settings")["stringData"]
    config = named("ConfigMap", "trading-config")["data"]
    secret_names = {v.name for v in VARIABLES if v.secret}

    assert set(settings) <= secret_names
    assert not set(config) & secret_names  # a secret never sits in the ConfigMap
    for secret in objects("Secret"):
        assert "data" not in secret  # values in clear (stringData), so a template is visible
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER in value, f"{secret['metadata']['name']}.{key} is not a placeholder"


def test_the_metrics_exporter_is_scraped_and_mounts_the_dagster_instance():
    deployment = named("Deployment", "metrics-exporter")
    pod = deployment["spec"]["template"]
    container = _container(deployment)
    port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"].endswith("/dagster.yaml"))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    service = named("Service", "metrics-exporter")

    assert container["command"][-2:] == ["--port", str(port)]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert volume["configMap"]["name"].endswith("-instance")  # the Helm release's instance
    assert mount["mountPath"] == f"{_env(container)['DAGSTER_HOME']}/dagster.yaml"
    assert _selects(service["spec"]["selector"], pod["metadata"]["labels"])
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
