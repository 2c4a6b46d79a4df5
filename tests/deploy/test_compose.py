"""deploy/compose.yaml: valid for the compose specification (../shared/schemas/compose-spec.json),
every service health-checked and started after what it needs, no secret in the file, and the
servers and the Dagster instance as the production profile runs them
(trading_assets/servers/services.py, dagster_home/dagster.prod.yaml)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from jsonschema.protocols import Validator

from trading_assets.lib.settings import VARIABLES, Settings
from trading_assets.servers import services
from trading_assets.servers.addresses import MlflowServer, PostgresServer, S3Server

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
COMPOSE_DIR = COMPOSE.parent
SPEC = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"
PROD_INSTANCE = ROOT / "dagster_home" / "dagster.prod.yaml"
PROJECT_IMAGES = ("trading-assets-dagster", "trading-assets-sidecar")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY")
LITERAL_CREDENTIALS = re.compile(r"\w+://[^/\s:@$]+:[^@\s$]+@")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def env_example() -> dict[str, str]:
    """The variables .env.example lists (commented out or not) and their example values."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
    return {
        m[1]: m[2].strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if (m := pattern.match(line))
    }


def interpolate(text: str, environ: Mapping[str, str], strict: bool = True) -> str:
    """``text`` as compose interpolates it from ``environ`` (``$$`` is a literal ``$``); a
    missing ``${NAME:?…}`` raises, or gives "" when not ``strict``."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2] or "", match[3] or ""
        given = environ.get(name)
        if operator.startswith(":"):
            given = given or None
        if given is not None:
            return given
        if operator.endswith("?") and strict:
            raise KeyError(f"{name}: {argument}")
        return argument if operator.endswith("-") else ""

    return INTERPOLATION.sub(value, text).replace("$$", "$")


def project_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's own code (its two images)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image", "").startswith(PROJECT_IMAGES)
    }


def image_of(service: dict[str, Any]) -> str:
    """``dagster`` or ``sidecar``: the project image a service runs."""
    return service["image"].split(":")[0].removeprefix("trading-assets-")


def one_shot_services(compose: dict[str, Any]) -> set[str]:
    """Services that run to completion: not restarted, and awaited as completed."""
    awaited: dict[str, set[str]] = {}
    for service in compose["services"].values():
        for name, dependency in service.get("depends_on", {}).items():
            awaited.setdefault(name, set()).add(dependency.get("condition"))
    return {
        name
        for name, service in compose["services"].items()
        if service.get("restart", "no") == "no"
        and awaited.get(name) == {"service_completed_successfully"}
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def _validator_for(schema: dict[str, Any]) -> type[Validator]:
    """The validator of the JSON Schema draft the schema declares."""
    declared = schema["$schema"]
    drafts = {
        "draft-04": jsonschema.Draft4Validator,
        "draft-06": jsonschema.Draft6Validator,
        "draft-07": jsonschema.Draft7Validator,
        "2019-09": jsonschema.Draft201909Validator,
        "2020-12": jsonschema.Draft202012Validator,
    }
    return next(validator for draft, validator in drafts.items() if draft in declared)


@pytest.fixture(scope="module")
def spec_validator() -> Validator:
    if not SPEC.exists():
        pytest.skip(f"the compose specification's schema is absent ({SPEC}: ../shared)")
    schema = json.loads(SPEC.read_text())
    return _validator_for(schema)(schema)


def spec_errors(validator: Validator, document: dict[str, Any]) -> list[str]:
    found = validator.iter_errors(document)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in found]


def test_the_compose_file_validates_against_the_compose_specification(spec_validator, compose):
    assert spec_errors(spec_validator, compose) == []


def test_the_specification_check_refuses_a_misspelt_key(spec_validator, compose):
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["healthcheck"]["intervall"] = "10s"

    assert any("intervall" in error for error in spec_errors(spec_validator, broken))


def test_the_services_are_the_agreed_ones(compose):
    expected = {
        "postgres", "redis", "seaweedfs", "mlflow", "dagster-code", "dagster-webserver",
        "dagster-daemon", "metrics-exporter", "sidecar-btc", "sidecar-eth", "simulator",
        "prometheus", "grafana",
    }  # fmt: skip
    services = compose["services"]

    assert expected <= set(services)
    assert set(services) - expected == one_shot_services(compose)  # besides, one-shot jobs only
    assert services["simulator"]["profiles"] == ["sim"]


def test_every_long_running_service_has_a_health_check(compose):
    one_shot = one_shot_services(compose)
    for name, service in compose["services"].items():
        if name in one_shot:
            continue
        check = service.get("healthcheck", {})
        assert not check.get("disable"), name
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_every_dependency_waits_for_health_or_completion(compose):
    services = compose["services"]
    one_shot = one_shot_services(compose)
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, rule in depends_on.items():
            expected = (
                "service_completed_successfully" if dependency in one_shot else "service_healthy"
            )
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] == expected, f"{name} → {dependency}"
            if "sim" in services[dependency].get("profiles", []):
                assert rule.get("required") is False  # compose runs without the profile too


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_no_secret_is_written_in_the_compose_files(compose):
    secret_settings = {v.name for v in VARIABLES if v.secret}
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if key in secret_settings or any(word in key for word in SECRET_WORDS):
                assert INTERPOLATION.fullmatch(value), f"{name}.{key} is not taken from .env"
    files = [COMPOSE, *(COMPOSE_DIR / "compose").rglob("*.*")]
    for path in files:
        text = path.read_text()
        assert not LITERAL_CREDENTIALS.search(text), f"credentials in a URI in {path}"
        assert "change-me" not in text, path


def test_the_projects_services_read_the_uncommitted_env_file(compose):
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    for name, service in project_services(compose).items():
        files = (
            service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
        )
        paths = {(COMPOSE_DIR / (f if isinstance(f, str) else f["path"])).resolve() for f in files}
        assert paths == {ROOT / ".env"}, name
    assert ".env" in ignored


def test_every_variable_the_compose_file_reads_is_listed_in_env_example():
    listed = set(env_example())
    read = {match[1] for match in INTERPOLATION.finditer(COMPOSE.read_text())}

    assert read - listed == set(), "add these to .env.example (deploy-only variables)"


def test_the_compose_instance_is_the_production_instance_with_a_docker_run_launcher(compose):
    instance = yaml.safe_load((COMPOSE_DIR / "compose" / "dagster.yaml").read_text())
    prod = yaml.safe_load(PROD_INSTANCE.read_text())
    launcher = instance.pop("run_launcher")
    daemon = environment(compose["services"]["dagster-daemon"])

    assert instance == prod
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    assert launcher["config"]["network"] == compose["networks"]["default"]["name"]
    assert launcher["config"]["env_vars"] == [v.name for v in VARIABLES]
    assert set(launcher["config"]["env_vars"]) <= set(daemon)  # parse_env_var needs each set
    image = launcher["config"]["image"]["env"]
    assert daemon[image] == environment(compose["services"]["dagster-code"])[image]


def test_dagster_accepts_the_compose_instance(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import ConfigurableClassData

    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", "trading-assets-dagster:latest")
    (tmp_path / "dagster.yaml").write_text((COMPOSE_DIR / "compose" / "dagster.yaml").read_text())

    config, _ = dagster_instance_config(str(tmp_path))
    for section in ("compute_logs", "run_coordinator", "run_launcher"):
        data = config[section]
        made = ConfigurableClassData(data["module"], data["class"], yaml.safe_dump(data["config"]))
        assert type(made.rehydrate()).__name__ == data["class"]


def test_the_workspace_loads_the_code_server(compose):
    workspace = yaml.safe_load((COMPOSE_DIR / "compose" / "workspace.yaml").read_text())
    local = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    argv = compose["services"][server["host"]]["command"]

    assert server["port"] == int(argv[argv.index("-p") + 1])
    assert argv[argv.index("-m") + 1] == local["load_from"][0]["python_module"]["module_name"]
    assert server["location_name"] == local["load_from"][0]["python_module"]["location_name"]


def test_postgres_makes_the_profiles_databases():
    sql = (COMPOSE_DIR / "compose" / "postgres" / "01-databases.sql").read_text()
    made = re.findall(r"^CREATE DATABASE (\w+);", sql, flags=re.MULTILINE)
    used = {
        urlsplit(value).path.strip("/")
        for value in env_example().values()
        if value.startswith("postgresql")
    }

    assert sorted(made) == sorted(services.DATABASES)
    assert used <= set(made)


def test_the_s3_server_is_the_profiles_seaweedfs_with_the_settings_key_pair(compose):
    seaweedfs = compose["services"]["seaweedfs"]
    env = environment(seaweedfs)

    assert seaweedfs["image"].endswith(f":{services.SEAWEEDFS_VERSION}")
    assert seaweedfs["command"][0] == "mini"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        taken = INTERPOLATION.fullmatch(env[name])
        assert taken and taken[1] == name, name  # the settings' own key pair, from .env


def test_the_mlflow_server_runs_as_in_the_profile_and_answers_its_tracking_uri(compose, tmp_path):
    from mlflow.server.security_utils import is_allowed_host_header

    mlflow = compose["services"]["mlflow"]
    argv = [interpolate(arg, {}) for arg in mlflow["command"]]
    profile = services.mlflow_service(
        tmp_path,
        MlflowServer("127.0.0.1", 5000, "s3://trading/mlflow"),
        PostgresServer("127.0.0.1", 5432, "trading", "password"),
        S3Server("127.0.0.1", 8333, "key", "secret"),
    )
    flags = [arg for arg in profile.argv if arg.startswith("--")]
    tracking = urlsplit(env_example()["MLFLOW_TRACKING_URI"])
    allowed = argv[argv.index("--allowed-hosts") + 1].split(",")
    env = environment(mlflow)

    assert set(flags) <= set(argv)
    assert argv[argv.index("--workers") + 1] == str(services.MLFLOW_WORKERS)
    assert argv[argv.index("--port") + 1] == str(tracking.port)
    assert tracking.hostname == "mlflow"  # the service's name on the compose network
    assert is_allowed_host_header(allowed, tracking.netloc)
    assert {k: env[k] for k in services.MLFLOW_ENV} == services.MLFLOW_ENV
    assert INTERPOLATION.fullmatch(env["MLFLOW_BACKEND_STORE_URI"])


def create_buckets_script() -> ModuleType:
    """deploy/compose/create_buckets.py as a module (compiled in memory: no __pycache__ there)."""
    path = COMPOSE_DIR / "compose" / "create_buckets.py"
    module = ModuleType("create_buckets")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def test_the_buckets_job_makes_every_bucket_the_stack_writes_to(compose):
    script = create_buckets_script()
    example = env_example()
    settings = Settings.from_environ(example)
    job = [interpolate(arg, {}) for arg in compose["services"]["buckets"]["command"]]
    mlflow = [interpolate(arg, {}) for arg in compose["services"]["mlflow"]["command"]]
    also = [job[i + 1] for i, arg in enumerate(job) if arg == "--also"]
    written = {urlsplit(v).netloc for v in example.values() if v.startswith("s3://")}
    written |= {example["DAGSTER_COMPUTE_LOGS_BUCKET"]}
    written |= {urlsplit(mlflow[mlflow.index("--artifacts-destination") + 1]).netloc}

    assert written <= set(script.bucket_names(settings, also))


@pytest.mark.prod
def test_the_buckets_job_creates_them_on_a_real_s3(s3_server, monkeypatch, capsys):
    script = create_buckets_script()
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRADING_MODELS_URI", "s3://compose-models/models")

    assert script.main(["--also", "s3://compose-mlflow/mlflow"]) == 0
    assert script.main([]) == 0  # again: the buckets exist, nothing fails
    buckets = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert {"compose-models", "compose-mlflow", "trading"} <= buckets
    assert "s3://compose-models exists" in capsys.readouterr().out


def test_one_sidecar_per_instrument_group_each_with_its_own_landing_volume(compose):
    sidecars = {
        name: service
        for name, service in project_services(compose).items()
        if service["command"][-1] == "streaming"
    }
    groups = [environment(s)["TRADING_INSTRUMENTS"].split(",") for s in sidecars.values()]
    instruments = [instrument for group in groups for instrument in group]
    volumes = [
        volume.split(":")[0]
        for service in sidecars.values()
        for volume in service["volumes"]
        if volume.split(":")[1] == environment(service)["TRADING_DATA_DIR"]
    ]

    assert len(sidecars) >= 2
    assert sorted(instruments) == sorted(env_example()["TRADING_INSTRUMENTS"].split(","))
    assert len(volumes) == len(sidecars) == len(set(volumes))  # one landing volume each
    assert set(volumes) <= set(compose["volumes"])  # named volumes, kept across restarts
