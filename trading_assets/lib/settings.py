"""The one place that reads the process environment: every setting of the Dagster code location
and of the sidecar, built once and checked at start.

``TRADING_ENV`` names the environment (``local``, the default, or ``prod``); each variable's
default depends on it (``VARIABLES``, which the README's table mirrors). Locally every store is
embedded under the data folder; in production every store is a server, and nothing passes between
the Dagster side and the sidecar through a local folder, so the stores' locations must be URIs
and the S3 credentials must be set. A bad value raises :class:`SettingsError`, whose one-line
message names the variable. Secrets are kept out of ``repr``.
"""

from __future__ import annotations

import functools
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from trading_assets.lib.instruments import InstrumentError, normalized

Environment = Literal["local", "prod"]
ENVIRONMENTS: tuple[Environment, ...] = ("local", "prod")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")
DEFAULT_BULK_BASE_URL = "https://data.binance.vision"
DEFAULT_REST_BASE_URL = "https://api.binance.com"
DEFAULT_WS_BASE_URL = "wss://stream.binance.com:9443"
VENUE_URLS: dict[str, tuple[str, str | None]] = {
    "BINANCE": ("BINANCE_WS_BASE_URL", "BINANCE_REST_BASE_URL"),
    "BINANCE_FUTURES": ("BINANCE_FUTURES_WS_BASE_URL", "BINANCE_FUTURES_REST_BASE_URL"),
    "COINBASE": ("COINBASE_WS_URL", None),
    "KRAKEN": ("KRAKEN_WS_URL", None),
}
"""Per venue, the variables of its WebSocket and REST base URLs (None: it has no REST the
sidecar uses)."""
DEFAULT_HISTORY_START = "2024-01-01"
DEFAULT_SIDECAR_URL = "http://127.0.0.1:8700"
DEFAULT_MODEL_NAME = "signal"
DEFAULT_S3_REGION = "us-east-1"
LOCAL_CATALOG_FILE = "iceberg_catalog.db"


class SettingsError(ValueError):
    """A variable is missing or malformed; the message is one line that names it."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: what it means and its default in each environment. None means
    required there (or, for a few, off); ``${NAME}`` in a default is another variable's value."""

    name: str
    meaning: str
    local: str | None
    prod: str | None
    secret: bool = False
    instance_only: bool = False  # read by the Dagster instance (dagster.prod.yaml), not the code

    def default(self, environment: Environment) -> str | None:
        return self.local if environment == "local" else self.prod


def local_catalog(root: Path) -> tuple[str, str]:
    """URI and warehouse URI of the embedded Iceberg catalog under ``root`` (``make run``'s is
    ``<data dir>/iceberg``): a sqlite file, with a generous lock timeout since concurrent backfill
    runs and the sidecar share it, and a warehouse folder."""
    root = root.resolve()
    return f"sqlite:///{root / LOCAL_CATALOG_FILE}?timeout=60", (root / "warehouse").as_uri()


def sqlite_file(uri: str) -> Path:
    """The database file of a ``sqlite:///`` URI (its query string dropped)."""
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


DATA = "${TRADING_DATA_DIR}"
VARIABLES: tuple[Variable, ...] = (
    Variable("TRADING_ENV", "the environment: `local` (embedded stores) or `prod` (servers)",
             "local", "prod"),
    Variable("TRADING_DATA_DIR", "local state: embedded stores, the sidecar's landing buffer",
             "${PROJECT_ROOT}/dagster_home/data", "${PROJECT_ROOT}/dagster_home/data"),
    Variable("TRADING_INSTRUMENTS", "instruments to ingest and serve, comma separated "
             "`VENUE:SYMBOL` ids (venues: `BINANCE`, `BINANCE_FUTURES`, `COINBASE`, `KRAKEN`)",
             ",".join(DEFAULT_INSTRUMENTS), ",".join(DEFAULT_INSTRUMENTS)),
    Variable("TRADING_CROSS_PAIRS", "cross-venue feature pairs, comma separated `OWN=REFERENCE` "
             "instrument ids, both in `TRADING_INSTRUMENTS` (`COINBASE:BTC-USD=BINANCE:BTCUSDT`): "
             "the own instrument gets the `cross` feature group against its reference", "", ""),
    Variable("TRADING_HISTORY_START", "first day offered as a partition (YYYY-MM-DD)",
             DEFAULT_HISTORY_START, DEFAULT_HISTORY_START),
    Variable("BINANCE_BULK_BASE_URL", "Binance's bulk files (the simulator under `make run`)",
             DEFAULT_BULK_BASE_URL, DEFAULT_BULK_BASE_URL),
    Variable("BINANCE_REST_BASE_URL", "Binance's REST API (gap-fill)",
             DEFAULT_REST_BASE_URL, DEFAULT_REST_BASE_URL),
    Variable("BINANCE_WS_BASE_URL", "Binance's WebSocket streams",
             DEFAULT_WS_BASE_URL, DEFAULT_WS_BASE_URL),
    Variable("BINANCE_FUTURES_WS_BASE_URL", "Binance USD-M futures' WebSocket streams",
             "wss://fstream.binance.com", "wss://fstream.binance.com"),
    Variable("BINANCE_FUTURES_REST_BASE_URL", "Binance USD-M futures' REST API (gap-fill)",
             "https://fapi.binance.com", "https://fapi.binance.com"),
    Variable("COINBASE_WS_URL", "Coinbase Advanced Trade's WebSocket",
             "wss://advanced-trade-ws.coinbase.com", "wss://advanced-trade-ws.coinbase.com"),
    Variable("KRAKEN_WS_URL", "Kraken's WebSocket v2", "wss://ws.kraken.com/v2",
             "wss://ws.kraken.com/v2"),
    Variable("TRADING_LANDING_DIR", "the sidecar's own landing segments (its local disk)",
             f"{DATA}/landing", f"{DATA}/landing"),
    Variable("TRADING_LANDING_URI", "where sealed segments are shipped and ingested from",
             "${TRADING_LANDING_DIR}", None),
    Variable("TRADING_LANDING_MIN_FREE", "free space the sidecar keeps under its landing folder "
             "(a size like `1GiB`, or a share like `5%`): below it market data stops landing, "
             "and the missed trades are fetched again once there is room", "1GiB", "1GiB"),
    Variable("TRADING_BOOK_SNAPSHOT_S", "seconds between the whole-book snapshots the sidecar "
             "lands beside every L2 diff (Binance spot's depth stream); `0` subscribes no depth "
             "and lands no book", "60", "60"),
    Variable("ICEBERG_CATALOG_URI", "the Iceberg SQL catalog (a sqlite file, or PostgreSQL)",
             f"sqlite:///{DATA}/iceberg/{LOCAL_CATALOG_FILE}?timeout=60", None, secret=True),
    Variable("ICEBERG_WAREHOUSE", "the Iceberg warehouse (a folder, or s3://)",
             f"file://{DATA}/iceberg/warehouse", None),
    Variable("TRADING_MODELS_URI", "where trained models pass between assets",
             f"{DATA}/models", None),
    Variable("FEAST_REGISTRY_PATH", "Feast's registry: a file (relative: under the Feast data "
             "folder, `${TRADING_DATA_DIR}/feast`), or PostgreSQL for the SQL registry",
             "data/registry.db", None, secret=True),
    Variable("FEAST_OFFLINE_ROOT", "Feast's offline exports and training sets (relative: under "
             "the Feast data folder)", "data/offline", None),
    Variable("REDIS_CONNECTION_STRING", "Feast's Redis online store, `host:port[,password=…]` "
             "(unset locally: the embedded sqlite store)", None, None, secret=True),
    Variable("MLFLOW_TRACKING_URI", "MLflow tracking and registry",
             f"sqlite:///{DATA}/mlflow/mlflow.db", None),
    Variable("MLFLOW_MODEL_NAME", "the registered model", DEFAULT_MODEL_NAME, DEFAULT_MODEL_NAME),
    Variable("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "retries of a request to the MLflow server "
             "(MLflow's own 7 wait about 4 minutes on a server that is down)", "2", "2"),
    Variable("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "backoff of those retries, in seconds "
             "(urllib3's factor: the second retry waits 2× it)", "1", "1"),
    Variable("MLFLOW_HTTP_REQUEST_TIMEOUT", "seconds one request to the MLflow server may take",
             "30", "30"),
    Variable("SIDECAR_URL", "the sidecar's API, as Dagster's sensors reach it",
             DEFAULT_SIDECAR_URL, DEFAULT_SIDECAR_URL),
    Variable("SIDECAR_HOST", "the address the sidecar's API binds", "127.0.0.1", "0.0.0.0"),
    Variable("SIDECAR_PORT", "the sidecar's API port", "8700", "8700"),
    Variable("STALENESS_MAX_AGE_S", "seconds an online row may age before the staleness sensor "
             "repairs it (unset: its default)", None, None),
    Variable("MODEL_GATE_IC_MARGIN", "IC a model must beat the best baseline by; `none` skips "
             "(unset: 0)", None, None),
    Variable("MODEL_GATE_PNL_MARGIN", "after-fee P&L over the best baseline; `none` skips "
             "(unset: 0)", None, None),
    Variable("MODEL_GATE_INCREMENTAL_IC_TOLERANCE", "IC the newest trees may cost on held-out "
             "rows beyond the holdout's noise (1.645 standard errors); `none` skips (unset: 0.05)",
             None, None),
    Variable("MODEL_GATE_MAX_IC_P_VALUE", "largest p-value of the out-of-sample IC; `none` skips "
             "(unset: 0.01)", None, None),
    Variable("DAGSTER_POSTGRES_URL", "the Dagster instance's storage, `postgresql+psycopg2://…`",
             None, None, secret=True, instance_only=True),
    Variable("DAGSTER_COMPUTE_LOGS_BUCKET", "the S3 bucket of the Dagster instance's compute logs",
             None, None, instance_only=True),
    Variable("AWS_ENDPOINT_URL", "the S3 endpoint (unset: AWS itself)", None, None),
    Variable("AWS_REGION", "the S3 region", DEFAULT_S3_REGION, DEFAULT_S3_REGION),
    Variable("AWS_ACCESS_KEY_ID", "S3 access key", None, None, secret=True),
    Variable("AWS_SECRET_ACCESS_KEY", "S3 secret key", None, None, secret=True),
)  # fmt: skip
BY_NAME = {variable.name: variable for variable in VARIABLES}
# MLflow's own variables bounding its client's requests to a server (read by MLflow at each
# request): the Dagster side's resource and the sidecar's model watcher both set them.
MLFLOW_REQUEST_BOUNDS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)
OPTIONAL_IN_PROD = (
    "AWS_ENDPOINT_URL",
    "STALENESS_MAX_AGE_S",
    "MODEL_GATE_IC_MARGIN",
    "MODEL_GATE_PNL_MARGIN",
    "MODEL_GATE_INCREMENTAL_IC_TOLERANCE",
    "MODEL_GATE_MAX_IC_P_VALUE",
)
"""Production defaults of None mean required, except these (unset: AWS itself, or the code's
own default)."""
ROLLOUT_PREFIX = "TRADING_ROLLOUT_"
"""``TRADING_ROLLOUT_<FIELD>`` overrides a field of the rollout policy (see sensors.rollout)."""


@dataclass(frozen=True)
class ObjectStore:
    """How to reach S3 (SeaweedFS locally, AWS or any S3-compatible server in production)."""

    endpoint_url: str | None
    region: str
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    def pyarrow_options(self) -> dict[str, str]:
        """Keyword arguments of ``pyarrow.fs.S3FileSystem``."""
        options = {"region": self.region}
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            options["endpoint_override"] = parts.netloc
            options["scheme"] = parts.scheme
        if self.access_key_id and self.secret_access_key:
            options["access_key"] = self.access_key_id
            options["secret_key"] = self.secret_access_key
        return options

    def pyiceberg_properties(self) -> dict[str, str]:
        """pyiceberg's FileIO properties for an ``s3://`` warehouse."""
        options = {"s3.region": self.region}
        if self.endpoint_url:
            options["s3.endpoint"] = self.endpoint_url
        if self.access_key_id and self.secret_access_key:
            options["s3.access-key-id"] = self.access_key_id
            options["s3.secret-access-key"] = self.secret_access_key
        return options

    def boto3_options(self) -> dict[str, str]:
        """Keyword arguments of ``boto3.client("s3", ...)``."""
        options = {"region_name": self.region}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.access_key_id and self.secret_access_key:
            options["aws_access_key_id"] = self.access_key_id
            options["aws_secret_access_key"] = self.secret_access_key
        return options


@dataclass(frozen=True)
class Settings:
    """Every setting both sides read. Locations are strings: a path locally, a URI in prod."""

    environment: Environment
    data_dir: Path
    instruments: tuple[str, ...]
    history_start: str
    bulk_base_url: str
    rest_base_url: str
    ws_base_url: str
    venue_urls: Mapping[str, tuple[str, str]]
    """Per venue name, its (WebSocket, REST) base URLs; REST is "" where the sidecar uses none."""
    landing_dir: Path
    landing_uri: str
    iceberg_catalog_uri: str = field(repr=False)
    iceberg_warehouse: str
    models_uri: str
    feast_registry_path: str = field(repr=False)
    feast_offline_root: str
    redis_connection_string: str | None = field(repr=False)
    mlflow_tracking_uri: str
    mlflow_model_name: str
    sidecar_url: str
    sidecar_host: str
    sidecar_port: int
    s3: ObjectStore
    raw: Mapping[str, str] = field(repr=False, compare=False, default_factory=dict)
    """The variables as read (defaults filled in), for the few consumers configured by name."""
    rollout_overrides: Mapping[str, str] = field(default_factory=dict)
    """Rollout policy fields set by ``TRADING_ROLLOUT_<FIELD>``, by lower-case field name."""
    cross_references: Mapping[str, str] = field(default_factory=dict)
    """Per own instrument, the reference instrument its cross features compare it with."""

    def tuning(self, name: str) -> str | None:
        """A tuning variable's value as set (None: unset, the consumer's own default)."""
        if name not in BY_NAME:
            raise KeyError(f"{name} is not a known variable")
        return self.raw.get(name)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        environment = _environment(environ)
        values = _resolve(environ, environment)
        _check(values, environment)

        def get(name: str) -> str:
            value = values[name]
            if value is None:  # only the optional ones are None once checked
                raise SettingsError(f"{name}: required ({BY_NAME[name].meaning})")
            return value

        return cls(
            environment=environment,
            data_dir=Path(get("TRADING_DATA_DIR")),
            instruments=(instruments := _instruments(get("TRADING_INSTRUMENTS"))),
            history_start=_date(get("TRADING_HISTORY_START"), "TRADING_HISTORY_START"),
            bulk_base_url=get("BINANCE_BULK_BASE_URL"),
            rest_base_url=get("BINANCE_REST_BASE_URL"),
            ws_base_url=get("BINANCE_WS_BASE_URL"),
            venue_urls={
                venue: (get(ws), get(rest) if rest else "")
                for venue, (ws, rest) in VENUE_URLS.items()
            },
            landing_dir=Path(get("TRADING_LANDING_DIR")).resolve(),
            landing_uri=get("TRADING_LANDING_URI").rstrip("/"),
            iceberg_catalog_uri=get("ICEBERG_CATALOG_URI"),
            iceberg_warehouse=get("ICEBERG_WAREHOUSE").rstrip("/"),
            models_uri=get("TRADING_MODELS_URI").rstrip("/"),
            feast_registry_path=get("FEAST_REGISTRY_PATH"),
            feast_offline_root=get("FEAST_OFFLINE_ROOT").rstrip("/"),
            redis_connection_string=values["REDIS_CONNECTION_STRING"],
            mlflow_tracking_uri=get("MLFLOW_TRACKING_URI"),
            mlflow_model_name=get("MLFLOW_MODEL_NAME"),
            sidecar_url=get("SIDECAR_URL").rstrip("/"),
            sidecar_host=get("SIDECAR_HOST"),
            sidecar_port=_port(get("SIDECAR_PORT"), "SIDECAR_PORT"),
            s3=ObjectStore(
                endpoint_url=values["AWS_ENDPOINT_URL"],
                region=get("AWS_REGION"),
                access_key_id=values["AWS_ACCESS_KEY_ID"],
                secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            ),
            raw={k: v for k, v in values.items() if v is not None},
            rollout_overrides={
                key.removeprefix(ROLLOUT_PREFIX).lower(): value.strip()
                for key, value in environ.items()
                if key.startswith(ROLLOUT_PREFIX) and value.strip()
            },
            cross_references=_cross_pairs(values["TRADING_CROSS_PAIRS"] or "", instruments),
        )

    def secrets(self) -> list[str]:
        """Values that must never appear in a log, run config or metadata entry."""
        return [self.raw[v.name] for v in VARIABLES if v.secret and self.raw.get(v.name)]


def load_settings() -> Settings:
    """The settings of this process's environment: built and checked on first use, then the same
    object for as long as the variables it reads keep their values."""
    relevant = tuple(
        (name, value)
        for name, value in os.environ.items()
        if name in BY_NAME or name.startswith(ROLLOUT_PREFIX)
    )
    return _settings_for(tuple(sorted(relevant)))


@functools.lru_cache(maxsize=8)
def _settings_for(variables: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_environ(dict(variables))


# --- parsing and checks --------------------------------------------------------------------------


def _environment(environ: Mapping[str, str]) -> Environment:
    value = environ.get("TRADING_ENV", "").strip().lower() or "local"
    if value not in ENVIRONMENTS:
        raise SettingsError(
            f"TRADING_ENV: unknown environment {value!r} (expected {' or '.join(ENVIRONMENTS)})"
        )
    return value  # type: ignore[return-value]


def _resolve(environ: Mapping[str, str], environment: Environment) -> dict[str, str | None]:
    """Each variable's value, or its default with ``${NAME}`` filled in from earlier ones."""
    values: dict[str, str | None] = {"PROJECT_ROOT": str(PROJECT_ROOT)}
    for variable in VARIABLES:
        raw = environ.get(variable.name, "").strip()
        value = raw or variable.default(environment)
        if value is not None:
            value = string.Template(value).safe_substitute(values)
        if variable.name in PATHS and value is not None:
            value = str(Path(value).resolve())
        values[variable.name] = value
    del values["PROJECT_ROOT"]
    return values


PATHS = ("TRADING_DATA_DIR", "TRADING_LANDING_DIR")


def _instruments(raw: str) -> tuple[str, ...]:
    texts = [text for text in raw.split(",") if text.strip()]
    if not texts:
        raise SettingsError(
            "TRADING_INSTRUMENTS: expected ids like BINANCE:BTCUSDT,COINBASE:BTC-USD"
        )
    try:
        instruments = tuple(dict.fromkeys(normalized(text) for text in texts))
    except InstrumentError as error:
        raise SettingsError(f"TRADING_INSTRUMENTS: {error}") from None
    return instruments


def _cross_pairs(raw: str, instruments: tuple[str, ...]) -> dict[str, str]:
    """``OWN=REFERENCE,...`` as {own: reference}: ids of listed instruments, one reference each."""
    pairs: dict[str, str] = {}
    for text in (part.strip() for part in raw.split(",")):
        if not text:
            continue
        own_text, sep, reference_text = text.partition("=")
        if not sep:
            raise SettingsError(
                f"TRADING_CROSS_PAIRS: expected OWN=REFERENCE (COINBASE:BTC-USD=BINANCE:BTCUSDT), "
                f"got {text!r}"
            )
        try:
            own, reference = normalized(own_text), normalized(reference_text)
        except InstrumentError as error:
            raise SettingsError(f"TRADING_CROSS_PAIRS: {error}") from None
        for instrument in (own, reference):
            if instrument not in instruments:
                raise SettingsError(
                    f"TRADING_CROSS_PAIRS: {instrument} is not in TRADING_INSTRUMENTS "
                    "(cross features need both instruments' bars)"
                )
        if own == reference or own in pairs:
            raise SettingsError(
                f"TRADING_CROSS_PAIRS: {own} needs one reference other than itself, got {text!r}"
            )
        pairs[own] = reference
    return pairs


def _port(raw: str, name: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}: expected a port number, got {raw!r}")
    return int(raw)


def _date(raw: str, name: str) -> str:
    import datetime as dt

    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a date YYYY-MM-DD, got {raw!r}") from None
    return raw


URI_SCHEMES: dict[str, tuple[str, ...]] = {
    "BINANCE_BULK_BASE_URL": ("http", "https", "file"),
    "BINANCE_REST_BASE_URL": ("http", "https"),
    "BINANCE_WS_BASE_URL": ("ws", "wss"),
    "ICEBERG_CATALOG_URI": ("sqlite", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"),
    "ICEBERG_WAREHOUSE": ("file", "s3"),
    "MLFLOW_TRACKING_URI": ("sqlite", "http", "https", "postgresql", "file"),
    "SIDECAR_URL": ("http", "https"),
    "AWS_ENDPOINT_URL": ("http", "https"),
    "DAGSTER_POSTGRES_URL": ("postgresql", "postgresql+psycopg2"),
    "TRADING_LANDING_URI": ("", "s3"),
    "TRADING_MODELS_URI": ("", "s3"),
    "FEAST_OFFLINE_ROOT": ("", "s3"),
    "FEAST_REGISTRY_PATH": ("", "s3", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"),
}
"""Schemes each URI may have; "" allows a plain path."""
SHARED_IN_PROD = (
    "TRADING_LANDING_URI",
    "TRADING_MODELS_URI",
    "FEAST_OFFLINE_ROOT",
    "ICEBERG_WAREHOUSE",
    "MLFLOW_TRACKING_URI",
    "ICEBERG_CATALOG_URI",
    "FEAST_REGISTRY_PATH",
)
"""What both sides reach: in prod a server or object store, never a local path or file."""
LOCAL_SCHEMES = ("", "file", "sqlite")


def _check(values: Mapping[str, str | None], environment: Environment) -> None:
    if environment == "prod":
        for variable in VARIABLES:
            required = variable.name not in OPTIONAL_IN_PROD and not variable.instance_only
            if values[variable.name] is None and required:
                raise SettingsError(
                    f"{variable.name}: required when TRADING_ENV=prod ({variable.meaning})"
                )
    for name, schemes in URI_SCHEMES.items():
        value = values[name]
        if value is None:
            continue
        scheme = _scheme(value)
        if scheme not in schemes or (scheme and not _well_formed(value, scheme)):
            allowed = ", ".join(f"{s}://" if s else "a path" for s in schemes)
            raise SettingsError(f"{name}: malformed URI {_redacted(value)!r} (expected {allowed})")
        if environment == "prod" and name in SHARED_IN_PROD and scheme in LOCAL_SCHEMES:
            raise SettingsError(
                f"{name}: {_redacted(value)!r} is on this machine's disk; with TRADING_ENV=prod "
                "it must be a server or object-store URI"
            )


def _scheme(value: str) -> str:
    return value.split("://", 1)[0].lower() if "://" in value else ""


def _well_formed(value: str, scheme: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    if scheme in ("file", "sqlite"):
        return bool(parts.path)
    return bool(parts.netloc) and " " not in value


def _redacted(value: str) -> str:
    """A URI with any password replaced, fit for an error message."""
    try:
        parts = urlsplit(value)
        if parts.password:
            return value.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return value


def markdown_table() -> str:
    """The README's table of every variable (``python -m trading_assets.lib.settings``)."""

    def shown(value: str | None, required: bool) -> str:
        if value is None:
            return "**required**" if required else "unset"
        return f"`{value.replace('${PROJECT_ROOT}/', '')}`"

    rows = ["| variable | meaning | local | prod |", "|---|---|---|---|"]
    for v in VARIABLES:
        required = v.name not in OPTIONAL_IN_PROD
        notes = (" (secret)" if v.secret else "") + (
            " (read by the Dagster instance: `dagster_home/dagster.prod.yaml`)"
            if v.instance_only
            else ""
        )
        local = "not used" if v.instance_only else shown(v.local, False)
        rows.append(f"| `{v.name}` | {v.meaning}{notes} | {local} | {shown(v.prod, required)} |")
    rows.append(
        f"| `{ROLLOUT_PREFIX}<FIELD>` | overrides one field of the rollout policy "
        "(`sensors/rollout.py`) | unset | unset |"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
