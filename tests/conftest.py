"""Shared fixtures: the real recordings in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRADING_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real Binance recordings; skips the test when the folder is absent."""
    if not (SHARED_DATA / "binance").is_dir():
        pytest.skip(f"real market data not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def redis():
    """A real redis-server for the session (installed by `make test` when absent)."""
    from tests.services import redis_server

    with redis_server() as server:
        yield server


# The production profile's servers (trading_assets.servers), each started once per session and
# only when a test asks for it.


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 15 with the profile's databases and a password."""
    from trading_assets.servers import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 (SeaweedFS) that refuses requests without its credentials."""
    from trading_assets.servers import s3_server

    with s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_server(postgres, s3_server):
    """A real MLflow server on ``postgres`` that proxies artifacts to ``s3_server``."""
    from trading_assets.servers import mlflow_server

    with mlflow_server(postgres, s3_server) as server:
        yield server
