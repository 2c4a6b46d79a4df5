"""Load the Feast repository, open a store for an environment, and apply the definitions.

``apply_definitions`` is ``feast apply`` through the Python API: objects found in
``feature_repo/`` are created or updated, objects the registry holds but the repository no
longer defines are deleted (with their online tables), exactly as the CLI plans it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import json
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.paths import (
    DEFINITION_MODULES,
    FEATURE_REPO_DIR,
    YAML_BY_ENVIRONMENT,
    offline_root,
    resolve,
)
from trading_assets.lib.features import KNOWN_GROUPS
from trading_assets.lib.settings import SettingsError, load_settings
from trading_assets.lib.storage import S3_SCHEME, scheme_of

PARQUET_SUFFIX = ".parquet"

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig
    from feast.repo_contents import RepoContents

_UNEXPANDED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def definitions_version(repo_dir: Path = FEATURE_REPO_DIR) -> str:
    """A short hash of everything ``feast apply`` would register: the repository's Python and
    yaml files plus the feature names, each service's features and the TTL they pull from the
    feature library. Computed without importing Feast, so loading the Dagster definitions stays
    fast."""
    digest = hashlib.sha256()
    for path in sorted([*repo_dir.glob("*.py"), *repo_dir.glob("*.yaml"), *repo_dir.glob(".*")]):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    served = {
        "groups": {group: spec.group_features(group) for group in KNOWN_GROUPS},
        "services": {name: spec.service_features(name) for name in spec.SERVICES},
        "ttl_s": spec.view_ttl().total_seconds(),
    }
    digest.update(json.dumps(served, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def load_repo_config(
    environment: str,
    data_root: Path | str,
    overrides: Mapping[str, Any] | None = None,
    repo_dir: Path = FEATURE_REPO_DIR,
) -> RepoConfig:
    """Read the environment's ``feature_store.yaml`` (``${VAR}`` expanded from the environment),
    apply ``overrides`` (dotted keys, e.g. ``{"online_store.path": "/tmp/online.db"}``) and
    resolve relative paths against ``data_root``."""
    from feast.repo_config import RepoConfig

    if environment not in YAML_BY_ENVIRONMENT:
        raise ValueError(f"unknown Feast environment {environment!r}")
    overrides = overrides or {}
    yaml_text = (repo_dir / YAML_BY_ENVIRONMENT[environment]).read_text()
    expanded = _expand_env(yaml.safe_load(yaml_text))
    # Blank what the overrides replace before looking for unset variables, and set the override
    # values only after expanding: a secret passed in (a password with a ``$``) is taken as is.
    _set_dotted(expanded, dict.fromkeys(overrides))
    missing = sorted(set(_UNEXPANDED.findall(json.dumps(expanded))))
    if missing:
        yaml_name = YAML_BY_ENVIRONMENT[environment]
        them = "it" if len(missing) == 1 else "them"
        raise SettingsError(
            f"{', '.join(missing)}: unset, but feature_repo/{yaml_name} needs {them}"
        )
    _set_dotted(expanded, overrides)
    _registry_follows_path(expanded.get("registry"))
    config = RepoConfig(**expanded)
    config.repo_path = Path(data_root)
    return config


def store_overrides(
    registry_path: str | None = None,
    redis_connection_string: str | None = None,
    online_store_type: str | None = None,
    online_store_path: str | None = None,
) -> dict[str, Any]:
    """``load_repo_config`` overrides for one deployment, decided by the values alone, whatever
    the environment's yaml holds: a Redis connection string selects Feast's Redis online store
    (replacing the yaml's whole section), a registry path replaces the yaml's (and the registry's
    type follows it), ``online_store_type`` replaces the section with a bare store of that type."""
    values: dict[str, Any] = {}
    if registry_path:
        values["registry.path"] = registry_path
    if redis_connection_string:
        values["online_store"] = {"type": "redis", "connection_string": redis_connection_string}
    elif online_store_type:
        values["online_store"] = {"type": online_store_type}
    if online_store_path:
        values["online_store.path"] = online_store_path
    return values


SQL_REGISTRY_SCHEMES = ("postgresql", "postgresql+psycopg2", "postgresql+psycopg")
SQL_REGISTRY_DRIVER = "postgresql+psycopg2"
"""The driver installed with the project; Feast would take a bare ``postgresql://`` to psycopg 3."""


def _registry_follows_path(registry: Any) -> None:
    """Make a file or SQL registry's type follow its path: a PostgreSQL URL is Feast's SQL
    registry, anything else (a path, an ``s3://`` URI) a file registry. Other registry types (a
    remote one, say) are left as configured."""
    if not isinstance(registry, dict) or registry.get("registry_type", "file") not in (
        "file",
        "sql",
    ):
        return
    path = str(registry.get("path") or "")
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if scheme in SQL_REGISTRY_SCHEMES:
        registry["registry_type"] = "sql"
        if scheme == "postgresql":
            registry["path"] = SQL_REGISTRY_DRIVER + path[len(scheme) :]
    else:
        registry["registry_type"] = "file"
        # Keys only the SQL registry knows would fail the file registry's validation.
        for key in ("sqlalchemy_config_kwargs", "read_path", "schema_mode"):
            registry.pop(key, None)


def _set_dotted(config: dict[str, Any], values: Mapping[str, Any]) -> None:
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = value


def _expand_env(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _expand_env(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand_env(value) for value in node]
    return os.path.expandvars(node) if isinstance(node, str) else node


def open_store(config: RepoConfig) -> FeatureStore:
    """A ``FeatureStore`` on ``config``, its data root created if missing. When its DuckDB
    offline store reads exports on S3, DuckDB is given the settings' S3 first (see
    :mod:`~trading_assets.lib.feature_store.duckdb_s3`)."""
    from feast import FeatureStore
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    assert config.repo_path is not None
    Path(config.repo_path).mkdir(parents=True, exist_ok=True)
    if getattr(config.offline_store, "type", None) == "duckdb" and _on_s3(offline_root()):
        from trading_assets.lib.feature_store.duckdb_s3 import configure_default_connection

        configure_default_connection(load_settings().s3)
    store = FeatureStore(repo_path=str(config.repo_path), config=config)
    if getattr(config.online_store, "type", None) == "sqlite":
        enable_wal(Path(SqliteOnlineStore._get_db_path(config)))
    return store


def _on_s3(location: str) -> bool:
    return scheme_of(location) == S3_SCHEME


def enable_wal(db_path: Path) -> None:
    """Put an sqlite online store in write-ahead-log mode (a setting the file keeps).

    In sqlite's default rollback mode a write's commit locks readers out, and they wait up to
    five seconds: the sidecar's per-second read would stall behind every Dagster materialization
    and every push of its own writer thread. In WAL mode readers never wait for a writer.
    """
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as connection:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"{db_path} refused write-ahead logging (journal mode {mode})")


def load_definitions(repo_dir: Path = FEATURE_REPO_DIR) -> RepoContents:
    """Import the repository's modules the way ``feast apply`` does (the repository folder on
    ``sys.path``, modules by file name) and collect the Feast objects they define."""
    from feast import Entity, FeatureService, FeatureView, PushSource
    from feast.data_source import DataSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.repo_contents import RepoContents

    if str(repo_dir) not in sys.path:
        sys.path.insert(0, str(repo_dir))
    contents = RepoContents(
        projects=[],
        data_sources=[],
        feature_views=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[],
        feature_services=[],
        permissions=[],
    )

    def add(bucket: list, obj: Any) -> None:
        if obj is not None and not any(obj is seen for seen in bucket):
            bucket.append(obj)

    for name in DEFINITION_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, DataSource):
                add(contents.data_sources, obj)
                if isinstance(obj, PushSource):
                    add(contents.data_sources, obj.batch_source)
            elif isinstance(obj, FeatureView):
                add(contents.feature_views, obj)
                add(contents.data_sources, obj.batch_source)
                add(contents.data_sources, obj.stream_source)
            elif isinstance(obj, Entity):
                add(contents.entities, obj)
            elif isinstance(obj, FeatureService):
                add(contents.feature_services, obj)
    contents.entities.append(DUMMY_ENTITY)
    return contents


def localize_sources(contents: RepoContents, data_root: Path) -> RepoContents:
    """A copy whose file sources point at this deployment's exports: absolute globs under the
    offline root of the current settings (resolved against ``data_root`` when relative).

    The definitions name each export's folder (the last part of a source's path); where the
    folders live is the deployment's, read now rather than when the definitions were imported.
    The registry gets absolute locations because the DuckDB offline store reads paths as given,
    relative to the process's working directory. The glob names the partition files, not the
    folder, so staged files (hidden names) are never read. Sources on S3 carry the settings'
    endpoint (an address, not a secret) for Feast's readers that take it from the source.
    """
    from feast import FileSource

    root = resolve(data_root, offline_root()).rstrip("/")
    endpoint = load_settings().s3.endpoint_url if _on_s3(root) else None
    localized = copy.deepcopy(contents)
    sources = list(localized.data_sources)
    for view in localized.feature_views:
        sources += [view.batch_source, getattr(view.stream_source, "batch_source", None)]
    for source in sources:
        if isinstance(source, FileSource) and not source.path.endswith(PARQUET_SUFFIX):
            folder = source.path.rstrip("/").rsplit("/", 1)[-1]
            source.file_options.uri = f"{root}/{folder}/*{PARQUET_SUFFIX}"
            source.file_options.s3_endpoint_override = endpoint or ""
    return localized


@dataclass(frozen=True)
class ApplySummary:
    changes: dict[str, list[str]]
    """Object names (``Kind:name``) by transition: CREATE, UPDATE, DELETE, UNCHANGED."""
    feature_views: dict[str, list[str]]
    feature_services: dict[str, list[str]]

    @property
    def changed(self) -> bool:
        return any(self.changes.get(kind) for kind in ("CREATE", "UPDATE", "DELETE"))


def apply_definitions(store: FeatureStore, contents: RepoContents) -> ApplySummary:
    """Register the repository in the store's registry and create/remove online tables; the
    summary is Feast's own plan (what ``feast plan`` prints) taken just before applying."""
    from feast.project import Project
    from feast.repo_operations import extract_objects_for_apply_delete

    contents = localize_sources(contents, Path(store.config.repo_path or "."))
    if not contents.projects:
        # As the CLI does: the project named in feature_store.yaml, so it is never "deleted".
        description = store.config.project_description or ""
        contents.projects.append(Project(name=store.project, description=description))
    registry_diff, _, _ = store.plan(contents)
    changes: dict[str, list[str]] = {}
    for diff in registry_diff.feast_object_diffs:
        kind = diff.feast_object_type.name.title().replace("_", "")
        changes.setdefault(diff.transition_type.name, []).append(f"{kind}:{diff.name}")
    to_apply, to_delete, _, _ = extract_objects_for_apply_delete(
        store.project, store.registry, contents
    )
    store.apply(list(to_apply), objects_to_delete=list(to_delete), partial=False)
    return ApplySummary(
        changes={kind: sorted(names) for kind, names in changes.items()},
        feature_views={v.name: [f.name for f in v.features] for v in contents.feature_views},
        feature_services={
            s.name: [p.name for p in s.feature_view_projections] for s in contents.feature_services
        },
    )
