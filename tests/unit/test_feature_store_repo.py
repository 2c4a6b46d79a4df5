"""Feast repo config: environment variables fill the yaml, overrides are taken verbatim, and the
values (not the environment's name) decide the registry and online store types."""

from __future__ import annotations

import re

import pytest
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

from trading_assets.lib.feature_store.duckdb_s3 import secret_statement
from trading_assets.lib.feature_store.paths import YAML_BY_ENVIRONMENT
from trading_assets.lib.feature_store.repo import load_repo_config, store_overrides
from trading_assets.lib.settings import ObjectStore


def test_prod_config_needs_its_environment_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("FEAST_REGISTRY_PATH", raising=False)
    monkeypatch.delenv("REDIS_CONNECTION_STRING", raising=False)

    with pytest.raises(ValueError, match="FEAST_REGISTRY_PATH"):
        load_repo_config("prod", tmp_path)


def test_prod_config_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEAST_REGISTRY_PATH", str(tmp_path / "registry.db"))
    monkeypatch.setenv("REDIS_CONNECTION_STRING", "localhost:6379")

    config = load_repo_config("prod", tmp_path)

    assert isinstance(config.online_store, RedisOnlineStoreConfig)
    assert config.online_store.connection_string == "localhost:6379"
    assert config.repo_path == tmp_path


def test_an_override_secret_is_not_expanded(tmp_path, monkeypatch):
    monkeypatch.delenv("FEAST_REGISTRY_PATH", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    secret = "localhost:6379,password=p$HOME${UNSET_PART}"

    config = load_repo_config(
        "prod",
        tmp_path,
        {"registry.path": str(tmp_path / "registry.db"), "online_store.connection_string": secret},
    )

    assert isinstance(config.online_store, RedisOnlineStoreConfig)
    assert config.online_store.connection_string == secret


@pytest.mark.parametrize(
    ("path", "registry_type", "loaded_path"),
    [
        ("postgresql://u:p@db:5432/feast", "sql", "postgresql+psycopg2://u:p@db:5432/feast"),
        ("postgresql+psycopg2://u:p@db/feast", "sql", "postgresql+psycopg2://u:p@db/feast"),
        ("s3://bucket/feast/registry.db", "file", "s3://bucket/feast/registry.db"),
        ("data/registry.db", "file", "data/registry.db"),
    ],
)
def test_the_registry_type_follows_its_path_in_either_environment(
    path, registry_type, loaded_path, tmp_path
):
    overrides = store_overrides(registry_path=path, redis_connection_string="localhost:6379")

    configs = [load_repo_config(env, tmp_path, overrides) for env in YAML_BY_ENVIRONMENT]

    for config in configs:
        registry = config.registry
        assert registry is not None
        assert (registry.registry_type, registry.path) == (registry_type, loaded_path)


def test_a_redis_connection_string_selects_the_redis_store_whatever_the_yaml(tmp_path):
    secret = "localhost:6379,password=s3cret"

    local = load_repo_config("local", tmp_path, store_overrides(redis_connection_string=secret))
    embedded = load_repo_config("local", tmp_path, store_overrides())

    assert isinstance(local.online_store, RedisOnlineStoreConfig)
    assert local.online_store.connection_string == secret
    assert isinstance(embedded.online_store, SqliteOnlineStoreConfig)


def test_the_duckdb_secret_binds_every_value_and_addresses_a_custom_endpoint_by_path():
    store = ObjectStore("http://127.0.0.1:8333", "eu-west-1", "key-id", "secret-key")

    statement, parameters = secret_statement(store)
    on_aws, aws_parameters = secret_statement(ObjectStore(None, "us-east-1"))

    for value in ("key-id", "secret-key", "127.0.0.1", "eu-west-1"):
        assert value not in statement
    assert statement.count("$") == len(parameters)
    options = dict(zip(re.findall(r"(\w+) \$\d+", statement), parameters, strict=True))
    assert options == {
        "REGION": "eu-west-1",
        "ENDPOINT": "127.0.0.1:8333",
        "URL_STYLE": "path",
        "USE_SSL": False,
        "KEY_ID": "key-id",
        "SECRET": "secret-key",
    }
    assert "ENDPOINT" not in on_aws and aws_parameters == ["us-east-1"]
