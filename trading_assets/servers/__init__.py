"""The production profile's servers, started by the project: PostgreSQL 15, Redis, S3, MLflow.

One home for how each server starts, for both uses:

- supervised (``make run-prod``): ``*_service(root, server)`` prepares the server's folder under
  ``root`` once (a cluster and its databases, a data folder, a config file) and returns the
  :class:`~trading_assets.supervisor.Service` that runs it in the foreground;
- tests: ``*_server()`` context managers run the same command on a free loopback port in a
  temporary folder, removed afterwards, with ``stop()``, ``start()`` and ``restart()`` on the same
  port and data.

Each server's addresses are a small frozen dataclass. Secrets reach a server through a file only
its owner reads or through its environment, never its command line, and stay out of ``repr``.
"""

from trading_assets.servers.addresses import (
    S3_REGION,
    MlflowServer,
    PostgresServer,
    RedisServer,
    S3Server,
)
from trading_assets.servers.running import (
    LOOPBACK,
    ServerProcess,
    free_port,
    free_port_block,
    mlflow_server,
    postgres_server,
    redis_server,
    s3_server,
)
from trading_assets.servers.services import (
    DATABASES,
    MLFLOW_ENV,
    MLFLOW_WORKERS,
    SEAWEEDFS_PORTS,
    SEAWEEDFS_VERSION,
    ensure_buckets,
    mlflow_service,
    postgres_service,
    prepare_postgres,
    redis_service,
    s3_service,
)

__all__ = [
    "DATABASES",
    "LOOPBACK",
    "MLFLOW_ENV",
    "MLFLOW_WORKERS",
    "S3_REGION",
    "SEAWEEDFS_PORTS",
    "SEAWEEDFS_VERSION",
    "MlflowServer",
    "PostgresServer",
    "RedisServer",
    "S3Server",
    "ServerProcess",
    "ensure_buckets",
    "free_port",
    "free_port_block",
    "mlflow_server",
    "mlflow_service",
    "postgres_server",
    "postgres_service",
    "prepare_postgres",
    "redis_server",
    "redis_service",
    "s3_server",
    "s3_service",
]
