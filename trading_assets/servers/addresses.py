"""Each server's addresses: a small frozen dataclass per server, secrets kept out of ``repr``,
with ``stop()``, ``start()`` and ``restart()`` when this process started it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

if TYPE_CHECKING:
    from trading_assets.servers.running import ServerProcess

S3_REGION = "us-east-1"


class Controls:
    """``stop()``, ``start()`` and ``restart()`` of a server this process started."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # each address is a dataclass
    process: ServerProcess | None

    def stop(self) -> None:
        self._process().stop()

    def start(self) -> None:
        self._process().start()

    def restart(self) -> None:
        """Stop, then start again on the same port and data."""
        self._process().restart()

    def _process(self) -> ServerProcess:
        if self.process is None:
            raise RuntimeError(f"this {type(self).__name__} was not started by this process")
        return self.process


@dataclass(frozen=True)
class PostgresServer(Controls):
    host: str
    port: int
    user: str = "postgres"
    password: str = field(default="", repr=False)
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL of ``database``; ``driver="postgresql"`` for plain libpq clients."""
        password = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"{driver}://{quote(self.user, safe='')}{password}@{self.host}:{self.port}/{database}"
        )


@dataclass(frozen=True)
class RedisServer(Controls):
    host: str
    port: int
    password: str = field(default="", repr=False)
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def connection_string(self) -> str:
        """Feast's Redis online store form: ``host:port[,password=…]``."""
        password = f",password={self.password}" if self.password else ""
        return f"{self.host}:{self.port}{password}"

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"


@dataclass(frozen=True)
class S3Server(Controls):
    host: str
    port: int
    access_key: str
    secret_key: str = field(default="", repr=False)
    region: str = S3_REGION
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables that give a process (boto3, pyarrow, MLflow's server) this S3."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url, "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }  # fmt: skip

    def client(self) -> Any:
        """A boto3 S3 client holding these credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )  # fmt: skip


@dataclass(frozen=True)
class MlflowServer(Controls):
    host: str
    port: int
    artifacts_destination: str  # s3://bucket/prefix, written by the server alone
    process: ServerProcess | None = field(default=None, repr=False, compare=False)

    @property
    def tracking_url(self) -> str:
        return f"http://{self.host}:{self.port}"
