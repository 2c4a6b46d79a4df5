"""The deploy files against the code: every setting production needs reaches every process that
reads it (compose, the Helm values, the manifests), the ports and paths they probe and scrape are
the ones the code serves, and every command they run starts in its image's environment."""

from __future__ import annotations

import ast
import json
import shlex
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.images import DOCKERFILES, ImageEnv, command, read_stages
from tests.deploy.test_compose import (
    COMPOSE_DIR,
    environment,
    image_of,
    interpolate,
    load_compose,
    project_services,
)
from tests.deploy.test_k8s_manifests import manifests, named
from trading_assets.lib.settings import BY_NAME, OPTIONAL_IN_PROD, VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
REQUIRED = {v.name for v in VARIABLES if v.prod is None and v.name not in OPTIONAL_IN_PROD}
INSTANCE_ONLY = {v.name for v in VARIABLES if v.instance_only}
PROJECT_IMAGES = {"trading-assets-dagster": "dagster", "trading-assets-sidecar": "sidecar"}


def env_file() -> dict[str, str]:
    """What .env holds when it is a copy of .env.example: the lines not commented out."""
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def helm_values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


def api_routes(path: Path) -> set[str]:
    """The paths an aiohttp module routes: the first argument of ``add_get("/x", …)``,
    ``web.get("/x", …)`` and the like."""
    verbs = {"add_get", "add_post", "add_route", "get", "post", "delete"}
    routes = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in verbs or not node.args:
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and str(first.value).startswith("/"):
            routes.add(str(first.value))
    return routes


def module_constant(path: Path, name: str) -> Any:
    """A module-level constant, read from the source without importing the module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} not in {path}")


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _health_url(service: dict[str, Any]) -> str:
    """The URL a service's ``python -c "…urlopen('…')"`` health check fetches."""
    code = service["healthcheck"]["test"][-1]
    compile(code, "healthcheck", "exec")
    return code.split("urlopen('", 1)[1].split("'", 1)[0]


# --- settings ------------------------------------------------------------------------------------


def _settings_of(env: dict[str, str], who: str) -> Settings:
    settings = Settings.from_environ(env)  # raises the settings' own one-line error
    assert settings.environment == "prod", who
    missing = {name for name in REQUIRED - INSTANCE_ONLY if not env.get(name)}
    assert not missing, f"{who} lacks {sorted(missing)}"
    return settings


def test_every_compose_service_of_the_project_has_the_production_settings():
    compose, dotenv = load_compose(), env_file()
    for name, service in project_services(compose).items():
        own = {k: interpolate(v, dotenv, strict=False) for k, v in environment(service).items()}
        env = {**dotenv, **own}
        _settings_of(env, name)
        if image_of(service) == "dagster":  # they read the instance (deploy/compose/dagster.yaml)
            assert all(env.get(n) for n in INSTANCE_ONLY & REQUIRED), name


def _k8s_environment(env_from: list[dict[str, Any]], env: list[dict[str, Any]]) -> dict[str, str]:
    """A container's environment from the manifests' ConfigMaps and Secrets."""
    values: dict[str, str] = {}
    for source in env_from:
        if "configMapRef" in source:
            values |= named("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            values |= named("Secret", source["secretRef"]["name"])["stringData"]
    for item in env:
        if "value" in item:
            values[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            values[item["name"]] = named("Secret", ref["name"])["stringData"][ref["key"]]
    return values


def instance_sources(values: dict[str, Any]) -> set[str]:
    """The variables the chart-rendered instance reads (``{env: NAME}`` in the values)."""
    return {
        node["env"] for node in _walk(values) if isinstance(node, dict) and set(node) == {"env"}
    }


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from _walk(child)


def test_every_dagster_pod_of_the_helm_release_has_the_production_settings():
    values = helm_values()
    code = values["dagster-user-deployments"]["deployments"][0]
    pods = {
        "webserver": values["dagsterWebserver"],
        "daemon": values["dagsterDaemon"],
        "code server": code,
        "runs": values["runLauncher"]["config"]["k8sRunLauncher"],
    }
    needed = instance_sources(values)
    assert needed <= {v.name for v in VARIABLES}, "the instance reads only settings"
    for pod, section in pods.items():
        env_from = [{"configMapRef": r} for r in section["envConfigMaps"]]
        env_from += [{"secretRef": r} for r in section["envSecrets"]]
        env = _k8s_environment(env_from, section.get("env") or [])
        _settings_of(env, pod)
        assert all(env.get(name) for name in needed), pod


def test_every_container_of_the_manifests_has_the_production_settings():
    values = helm_values()
    containers = [
        (doc["metadata"]["name"], container)
        for _, doc in manifests()
        for container in doc.get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("containers", [])
    ]
    assert containers
    for name, container in containers:
        env = _k8s_environment(container.get("envFrom", []), container.get("env", []))
        _settings_of(env, name)
        if container["image"].startswith("trading-assets-dagster"):  # reads the chart's instance
            assert all(env.get(n) for n in instance_sources(values)), name
            assert env.get("DAGSTER_PG_PASSWORD"), name


def test_the_charts_compute_logs_use_the_settings_region():
    config = helm_values()["computeLogManager"]["config"]["s3ComputeLogManager"]
    runs = helm_values()["runLauncher"]["config"]["k8sRunLauncher"]
    region = _k8s_environment([{"configMapRef": r} for r in runs["envConfigMaps"]], [])

    assert config["region"] == region["AWS_REGION"]


def test_the_metrics_exporter_reads_the_password_the_helm_release_reads():
    secret = helm_values()["global"]["postgresqlSecretName"]
    container = named("Deployment", "metrics-exporter")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    ref = env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]

    assert ref == {"name": secret, "key": "postgresql-password"}
    assert "postgresql-password" in named("Secret", secret)["stringData"]
    assert env["DAGSTER_K8S_PG_PASSWORD_SECRET"]["value"] == secret


# --- ports and paths -----------------------------------------------------------------------------


def test_the_sidecars_ports_and_paths_are_the_ones_its_api_serves():
    routes = api_routes(ROOT / "streaming" / "api.py")
    port = int(BY_NAME["SIDECAR_PORT"].prod or "")
    compose = load_compose()
    sidecars = [n for n, s in project_services(compose).items() if s["command"][-1] == "streaming"]
    scrape = next(job for job in _prometheus()["scrape_configs"] if job["job_name"] == "sidecar")
    targets = [t for group in scrape["static_configs"] for t in group["targets"]]

    assert {"/health", "/ready", "/metrics"} <= routes
    assert len(sidecars) >= 2
    for name in sidecars:
        url = urlsplit(_health_url(compose["services"][name]))
        assert (url.port, url.path) == (port, "/health"), name
    assert scrape["metrics_path"] in routes
    assert sorted(targets) == sorted(f"{name}:{port}" for name in sidecars)
    for _, doc in manifests():
        if doc["kind"] == "StatefulSet":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            assert container["ports"][0]["containerPort"] == port
            assert doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(
                port
            )
            paths = {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
            assert paths <= routes
    assert named("Service", "sidecar")["spec"]["ports"][0]["port"] == port
    assert urlsplit(env_file()["SIDECAR_URL"]).port == port


def test_the_code_servers_port_is_the_images_everywhere():
    argv = command(read_stages(DOCKERFILES["dagster"])[-1])
    port = int(_flag(argv, "-p"))
    compose = load_compose()
    code = compose["services"]["dagster-code"]
    workspace = yaml.safe_load((COMPOSE_DIR / "compose" / "workspace.yaml").read_text())

    assert int(_flag(code["command"], "-p")) == port
    assert int(_flag(code["healthcheck"]["test"], "-p")) == port
    assert workspace["load_from"][0]["grpc_server"]["port"] == port
    assert helm_values()["dagster-user-deployments"]["deployments"][0]["port"] == port


def test_the_metrics_exporters_port_is_its_own_everywhere():
    package = ROOT / "trading_assets" / "metrics_exporter" / "__init__.py"
    port = module_constant(package, "DEFAULT_PORT")
    compose = load_compose()
    exporter = compose["services"]["metrics-exporter"]
    url = urlsplit(_health_url(exporter))
    scrape = next(job for job in _prometheus()["scrape_configs"] if job["job_name"] == "dagster")
    deployment = named("Deployment", "metrics-exporter")["spec"]["template"]
    container = deployment["spec"]["containers"][0]

    assert int(_flag(exporter["command"], "--port")) == port
    assert (url.port, url.path) == (port, "/metrics")
    assert scrape["static_configs"][0]["targets"] == [f"metrics-exporter:{port}"]
    assert int(_flag(container["command"], "--port")) == port
    assert container["ports"][0]["containerPort"] == port
    assert deployment["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_the_simulators_port_and_status_path_are_its_own():
    from streaming.simulator.__main__ import parse_args

    simulator = load_compose()["services"]["simulator"]
    url = urlsplit(_health_url(simulator))
    routes = api_routes(ROOT / "streaming" / "simulator" / "server.py")

    assert int(_flag(simulator["command"], "--port")) == url.port == parse_args([]).port
    assert url.path in routes


def _prometheus() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS.read_text())


# --- the commands --------------------------------------------------------------------------------


def container_commands() -> set[tuple[str, tuple[str, ...]]]:
    """(image, argv) of every command the deploy files run with the project's images."""
    compose, dotenv = load_compose(), env_file()
    found: set[tuple[str, tuple[str, ...]]] = set()
    for service in project_services(compose).values():
        image = image_of(service)
        mounts = _bind_mounts(service)
        argv = [mounts.get(a, a) for a in (interpolate(a, dotenv) for a in service["command"])]
        found.add((image, tuple(argv)))
        test = service.get("healthcheck", {}).get("test", [""])  # one-shot jobs have none
        if test[0] == "CMD" and test[1] != "python":
            found.add((image, tuple(test[1:])))
    for _, doc in manifests():
        for container in (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            image = PROJECT_IMAGES.get(container["image"].split(":")[0])
            if image:
                found.add((image, tuple(container["command"])))
    for deployment in helm_values()["dagster-user-deployments"]["deployments"]:
        argv = ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(deployment["port"])]
        found.add(("dagster", (*argv, *deployment["dagsterApiGrpcArgs"])))
    # The same command with its options in another order is one command.
    return {min(c for c in found if sorted(c[1]) == sorted(argv)) for _, argv in found}


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → the repository file a service mounts there."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = str((COMPOSE_DIR / source).resolve())
    return mounts


# Runs each command with `--help` in one interpreter of the image's environment, so each library
# is imported once: a console script (dagster, dagster-webserver, mlflow, …) is its bin/ wrapper
# run as a script, `python -m X` and `python FILE` as python would run them (runpy).
HELP_RUNNER = """
import contextlib, io, json, runpy, shutil, sys

results = []
for argv in json.loads(sys.argv[1]):
    out, code = io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            if argv[:2] == ["python", "-m"]:
                sys.argv = [argv[2], *argv[3:], "--help"]
                runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            elif argv[0] == "python":
                sys.argv = [*argv[1:], "--help"]
                runpy.run_path(argv[1], run_name="__main__")
            else:
                sys.argv = [*argv, "--help"]
                runpy.run_path(shutil.which(argv[0]), run_name="__main__")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    except BaseException as error:
        code, _ = 1, out.write(repr(error))
    results.append([code, out.getvalue()])
print(json.dumps(results))
"""


def help_of(env: ImageEnv, commands: list[tuple[str, ...]]) -> list[tuple[int, str]]:
    """Each command's exit status and output with ``--help`` appended, in ``env``."""
    done = env.run(["python", "-c", HELP_RUNNER, json.dumps(commands)], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [(code, out) for code, out in json.loads(done.stdout.splitlines()[-1])]


def test_every_command_the_deploy_files_run_starts_in_its_image(image_envs):
    by_image: dict[str, list[tuple[str, ...]]] = {}
    for image, argv in sorted(container_commands()):
        by_image.setdefault(image, []).append(argv)
    assert set(by_image) == set(DOCKERFILES)
    for image, commands in by_image.items():
        for argv in commands:
            if argv[0] != "python":
                assert (image_envs[image].bin / argv[0]).exists(), f"{image}: no {argv[0]}"

    with ThreadPoolExecutor(max_workers=len(by_image)) as pool:
        helps = pool.map(lambda image: help_of(image_envs[image], by_image[image]), by_image)
        outcomes = dict(zip(by_image, helps, strict=True))
    failed = [
        f"{image}: {shlex.join(argv)} → {code}\n{out[-1500:]}"
        for image, commands in by_image.items()
        for argv, (code, out) in zip(commands, outcomes[image], strict=True)
        if code != 0 or "usage" not in out.lower()
    ]
    assert not failed, "\n\n".join(failed)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_images_own_command_is_the_one_compose_runs_by_default(image):
    """The services that run an image's default command spell it out as the image does."""
    default = command(read_stages(DOCKERFILES[image])[-1])
    compose = load_compose()
    runs = [s["command"] for s in project_services(compose).values() if image_of(s) == image]

    assert default in runs


def test_prometheus_and_grafana_find_their_files_where_compose_mounts_them():
    services = load_compose()["services"]
    mounts = {
        name: {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        for name in ("prometheus", "grafana")
    }
    config = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    folder, _, file = config.removeprefix("--config.file=").rpartition("/")
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "trading.yml").read_text())
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    prometheus = urlsplit(sources["datasources"][0]["url"])

    assert (COMPOSE_DIR / mounts["prometheus"][folder] / file).resolve() == PROMETHEUS
    assert (COMPOSE_DIR / mounts["grafana"]["/etc/grafana/provisioning"]).resolve() == provisioning
    dashboards = mounts["grafana"][providers["providers"][0]["options"]["path"]]
    assert any((COMPOSE_DIR / dashboards).resolve().glob("*.json"))
    assert prometheus.hostname == "prometheus"
    health = urlsplit(services["prometheus"]["healthcheck"]["test"][-1])
    assert health.port == prometheus.port  # where Prometheus listens in its container
