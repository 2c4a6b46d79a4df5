"""The production profile on one machine (``make run-prod``): PostgreSQL, Redis, S3 and the MLflow
server under one folder, their secrets made once and kept beside them (mode 600), and the
environment that points every process of the system at them.

The Dagster side and the sidecar get different data folders (``<root>/dagster``,
``<root>/sidecar``): nothing passes between them through a local folder, as when they run on two
machines.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from trading_assets.lib.settings import PROJECT_ROOT
from trading_assets.servers.addresses import MlflowServer, PostgresServer, RedisServer, S3Server
from trading_assets.servers.services import (
    mlflow_service,
    postgres_service,
    prepare_postgres,
    redis_service,
    s3_service,
)
from trading_assets.supervisor import Service

BUCKET = "trading"
USER = "trading"
LOOPBACK = "127.0.0.1"
PROD_INSTANCE_YAML = PROJECT_ROOT / "dagster_home" / "dagster.prod.yaml"


@dataclass(frozen=True)
class ProdPorts:
    postgres: int = 15432
    redis: int = 16379
    s3: int = 18333  # SeaweedFS also takes the nine ports after it
    mlflow: int = 5000


@dataclass(frozen=True)
class ProdProfile:
    """The four servers' addresses, with the secrets they were first made with."""

    root: Path
    postgres: PostgresServer
    redis: RedisServer
    s3: S3Server
    mlflow: MlflowServer

    @classmethod
    def under(cls, root: Path, ports: ProdPorts = ProdPorts()) -> ProdProfile:
        root = root.resolve()
        keys = _secrets(root / "secrets.json")
        return cls(
            root=root,
            postgres=PostgresServer(LOOPBACK, ports.postgres, USER, keys["postgres"]),
            redis=RedisServer(LOOPBACK, ports.redis, keys["redis"]),
            s3=S3Server(LOOPBACK, ports.s3, keys["s3_access_key"], keys["s3_secret_key"]),
            mlflow=MlflowServer(LOOPBACK, ports.mlflow, f"s3://{BUCKET}/mlflow"),
        )

    def prepare(self) -> None:
        """Make what the servers need before their first start (PostgreSQL's cluster)."""
        prepare_postgres(self.root / "servers" / "postgres", USER, self.postgres.password)

    def services(self, python: str = sys.executable) -> list[Service]:
        """The servers, in the order they start (MLflow needs PostgreSQL and S3)."""
        servers = self.root / "servers"
        return [
            postgres_service(servers / "postgres", self.postgres),
            redis_service(servers / "redis", self.redis),
            s3_service(servers / "s3", self.s3, [BUCKET]),
            mlflow_service(servers / "mlflow", self.mlflow, self.postgres, self.s3, python),
        ]

    def environment(self, side: str) -> dict[str, str]:
        """Every setting of ``TRADING_ENV=prod`` for one side (``dagster`` or ``sidecar``), with
        that side's own data folder."""
        s3 = f"s3://{BUCKET}"
        return {
            "TRADING_ENV": "prod",
            "TRADING_DATA_DIR": str(self.root / side),
            "TRADING_LANDING_URI": f"{s3}/landing",
            "TRADING_MODELS_URI": f"{s3}/models",
            "ICEBERG_CATALOG_URI": self.postgres.url("iceberg"),
            "ICEBERG_WAREHOUSE": f"{s3}/warehouse",
            "FEAST_REGISTRY_PATH": self.postgres.url("feast"),
            "FEAST_OFFLINE_ROOT": f"{s3}/feast",
            "REDIS_CONNECTION_STRING": self.redis.connection_string,
            "MLFLOW_TRACKING_URI": self.mlflow.tracking_url,
            "DAGSTER_POSTGRES_URL": self.postgres.url("dagster"),
            "DAGSTER_COMPUTE_LOGS_BUCKET": BUCKET,
            "AWS_ENDPOINT_URL": self.s3.endpoint_url,
            "AWS_REGION": self.s3.region,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
        }

    def dagster_home(self) -> Path:
        """A Dagster home holding the production instance's ``dagster.yaml``."""
        home = self.root / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROD_INSTANCE_YAML, home / "dagster.yaml")
        return home


def _secrets(path: Path) -> dict[str, str]:
    """The servers' secrets, made on the first run and read back after: PostgreSQL keeps the
    password it was initialised with."""
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "postgres": secrets.token_hex(16),
        "redis": secrets.token_hex(16),
        "s3_access_key": "trading-" + secrets.token_hex(4),
        "s3_secret_key": secrets.token_hex(20),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values
