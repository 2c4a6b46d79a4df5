"""Feast repo config: environment variables fill the yaml, overrides are taken verbatim."""

from __future__ import annotations

import pytest
from feast.infra.online_stores.redis import RedisOnlineStoreConfig

from trading_assets.lib.feature_store.repo import load_repo_config


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
