"""Feast on the production profile, on real servers: the SQL registry on PostgreSQL, the Redis
online store and the offline exports on S3 (SeaweedFS), read by DuckDB. The Dagster side and
the sidecar open the store from the same settings with data folders of their own, as two
machines would; nothing passes between them through a local folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg2
import pytest
from feast import FileSource
from polars.testing import assert_frame_equal
from redis import Redis

from streaming.config import parse_args
from streaming.online import OnlineFeatureReader, OnlineFeatureWriter, open_feature_store
from tests.integration.test_feast_training import DAY, bars, gold
from trading_assets.defs.features.assets import feast_registry, online_features
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.feature_store.training import labels_from_bars, training_frame
from trading_assets.lib.features import KNOWN_GROUPS, FeatureRow
from trading_assets.lib.settings import SettingsError
from trading_assets.resources import build_resources
from trading_assets.resources.feast import FeastResource
from trading_assets.servers import PostgresServer, RedisServer, S3Server, ensure_buckets

pytestmark = pytest.mark.prod

BUCKET = "feast-test"
SYMBOLS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")  # instrument ids
TRADE_SERVICE = "signal_trades_v1"  # price and flow, levels included: what materialize serves
NAMES = spec.service_features(TRADE_SERVICE)


def admin(postgres: PostgresServer, statement: str) -> None:
    connection = psycopg2.connect(postgres.url(driver="postgresql"))
    connection.autocommit = True  # CREATE / DROP DATABASE refuse a transaction
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute(statement)


@pytest.fixture
def registry_database(postgres: PostgresServer) -> Iterator[str]:
    """An empty database for this test's SQL registry, dropped afterwards."""
    name = f"feast_{secrets.token_hex(4)}"
    admin(postgres, f'CREATE DATABASE "{name}"')
    yield name
    admin(postgres, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def prod_environ(
    postgres: PostgresServer,
    redis: RedisServer,
    s3_server: S3Server,
    registry_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """``TRADING_ENV=prod`` pointed at the test servers, set in this process's environment; the
    stores this test does not touch get addresses nothing here connects to."""
    ensure_buckets(s3_server, [BUCKET])
    Redis(host=redis.host, port=redis.port).flushdb()  # one server per session: start empty
    root = f"s3://{BUCKET}/{secrets.token_hex(6)}"
    environ = s3_server.env() | {
        "TRADING_ENV": "prod",
        "TRADING_DATA_DIR": str(tmp_path / "dagster"),
        "TRADING_LANDING_URI": f"{root}/landing",
        "TRADING_MODELS_URI": f"{root}/models",
        "ICEBERG_CATALOG_URI": postgres.url("iceberg"),
        "ICEBERG_WAREHOUSE": f"{root}/warehouse",
        # A bare postgresql:// URL, as an operator would write it.
        "FEAST_REGISTRY_PATH": postgres.url(registry_database, driver="postgresql"),
        "FEAST_OFFLINE_ROOT": f"{root}/feast/offline",
        "REDIS_CONNECTION_STRING": redis.connection_string,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return environ


def dagster_feast() -> FeastResource:
    """The Dagster side's Feast resource as the definitions build it (``dg.EnvVar`` resolved)."""
    return build_resources()["feast"].process_config_and_initialize()


def sidecar_store(tmp_path: Path):
    """The sidecar's store, opened from its settings with a data folder of its own."""
    return open_feature_store(parse_args(["--data-dir", str(tmp_path / "sidecar")]))


def materialize(*assets: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(assets),
        resources={"feast": build_resources()["feast"]},
        instance=dg.DagsterInstance.ephemeral(),
    )


def gold_of(symbol: str, offset: float) -> pl.DataFrame:
    names = [c for c in gold().columns if c not in (spec.ENTITY, spec.TIMESTAMP_FIELD)]
    return gold().with_columns(pl.lit(symbol).alias(spec.ENTITY), pl.col(names) + offset)


def registry_rows(postgres: PostgresServer, database: str) -> list[bytes]:
    """Every row of every table in ``database``, as bytes (protos included)."""
    connection = psycopg2.connect(postgres.url(database, driver="postgresql"))
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [name for (name,) in cursor.fetchall()]
        rows: list[bytes] = []
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')
            rows += [
                b"|".join(bytes(v) if isinstance(v, memoryview) else str(v).encode() for v in row)
                for row in cursor.fetchall()
            ]
    return rows


def test_a_store_opened_elsewhere_from_the_settings_sees_what_dagster_applied(
    prod_environ, postgres, registry_database, tmp_path, caplog
):
    # Act: Dagster's asset applies the repository; the sidecar opens the store on its own
    applied = materialize(feast_registry)
    with caplog.at_level(logging.INFO, logger="streaming.online.store"):
        sidecar = sidecar_store(tmp_path)

    # Assert: the SQL registry in PostgreSQL holds every view, service and the S3 sources, as
    # Dagster applied them (the sidecar found its service there and applied nothing itself)
    assert applied.success
    assert "applying" not in caplog.text
    assert sidecar.config.registry.registry_type == "sql"
    assert sidecar.config.online_store.type == "redis"
    assert {view.name for view in sidecar.list_feature_views()} == set(KNOWN_GROUPS)
    assert {service.name for service in sidecar.list_feature_services()} == set(spec.SERVICES)
    for service in spec.SERVICES:
        served = OnlineFeatureReader(sidecar, service).names
        assert served == tuple(spec.service_features(service)), service
    gold_source = sidecar.get_data_source("gold_features_source")
    assert gold_source.path == f"{prod_environ['FEAST_OFFLINE_ROOT']}/features/*.parquet"
    rows = registry_rows(postgres, registry_database)
    assert any(b"gold_features_source" in row for row in rows)
    # No secret went into the shared registry, and no registry file onto either machine's disk.
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        assert not any(prod_environ[name].encode() in row for row in rows), name
    assert not list(tmp_path.rglob("registry.db"))
    assert not list(tmp_path.rglob("*.db"))


def test_a_training_set_read_from_s3_equals_the_same_set_read_from_disk(
    prod_environ, s3_server, tmp_path, monkeypatch
):
    # Arrange: two instruments' gold features exported to S3 (prod) and to a local folder (local)
    labels = pl.concat(
        [labels_from_bars(bars()).with_columns(instrument=pl.lit(s)) for s in SYMBOLS]
    )
    golds = {symbol: gold_of(symbol, 1_000.0 * i) for i, symbol in enumerate(SYMBOLS)}
    on_s3 = dagster_feast()
    s3_dir = on_s3.offline_features_dir()
    s3_store = on_s3.store()
    apply_definitions(s3_store, load_definitions())
    for symbol, frame in golds.items():
        offline.export_partition(frame, s3_dir, DAY, symbol)

    # Act: the S3 set, then the local one in the same process
    from_s3 = training_frame(s3_store, spec.TRAINING_SERVICE, labels)
    for name in prod_environ:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRADING_DATA_DIR", str(tmp_path / "local"))
    on_disk = FeastResource.local(tmp_path / "local" / "feast")
    disk_store = on_disk.store()
    apply_definitions(disk_store, load_definitions())
    for symbol, frame in golds.items():
        offline.export_partition(frame, on_disk.offline_features_dir(), DAY, symbol)
    from_disk = training_frame(disk_store, spec.TRAINING_SERVICE, labels)

    # Assert: the exports were on the server, and both sets are the same rows and values
    exported = s3_server.client().list_objects_v2(
        Bucket=BUCKET, Prefix=s3_dir.removeprefix(f"s3://{BUCKET}/")
    )
    assert len(exported.get("Contents", [])) == len(SYMBOLS)
    source = s3_store.get_data_source("gold_features_source")
    assert isinstance(source, FileSource) and source.path == f"{s3_dir}/*.parquet"
    assert not list((tmp_path / "dagster").rglob("*.parquet"))
    assert Path(on_disk.offline_features_dir()).is_dir()
    assert sorted(from_s3[spec.ENTITY].unique().to_list()) == list(SYMBOLS)
    served = spec.service_features(spec.TRAINING_SERVICE)
    assert from_s3.height > 0 and from_s3.select(served).null_count().sum_horizontal()[0] == 0
    assert_frame_equal(from_s3, from_disk)


def test_materialized_and_pushed_rows_reach_the_sidecar_reader_through_redis(
    prod_environ, redis, tmp_path
):
    # Arrange: gold on S3, applied and materialized to Redis by Dagster's assets
    on_s3 = dagster_feast()
    golds = {symbol: gold_of(symbol, 1_000.0 * i) for i, symbol in enumerate(SYMBOLS)}
    for symbol, frame in golds.items():
        offline.export_partition(frame, on_s3.offline_features_dir(), DAY, symbol)
    result = materialize(feast_registry, online_features)
    sidecar = sidecar_store(tmp_path)
    reader = OnlineFeatureReader(sidecar, TRADE_SERVICE)
    latest = {s: frame.sort(spec.TIMESTAMP_FIELD).row(-1, named=True) for s, frame in golds.items()}
    pushed_at = latest["BINANCE:BTCUSDT"][spec.TIMESTAMP_FIELD] + dt.timedelta(
        seconds=1, microseconds=7
    )
    pushed_us = int(pushed_at.timestamp()) * 1_000_000 + pushed_at.microsecond
    pushed = FeatureRow(
        "BINANCE:BTCUSDT", pushed_us, {n: -1.5 - i / 7 for i, n in enumerate(NAMES)}
    )

    # Act: read what Dagster materialized, push a newer row from the sidecar, read it back
    materialized = {symbol: reader.read(symbol) for symbol in SYMBOLS}
    writer = OnlineFeatureWriter(sidecar, views=spec.TRADE_GROUPS, flush_every_s=60)
    writer.submit(pushed)
    flushed = writer.close()
    after_push = reader.read("BINANCE:BTCUSDT")
    dagster_side = OnlineFeatureReader(on_s3.store(), TRADE_SERVICE).read("BINANCE:BTCUSDT")

    # Assert
    assert result.success and flushed
    for symbol, read in materialized.items():
        assert read is not None, symbol
        assert read.values == {n: latest[symbol][n] for n in NAMES}, symbol
        expected_ns = int(latest[symbol][spec.TIMESTAMP_FIELD].timestamp()) * 1_000_000_000
        assert read.event_time_ns == expected_ns, symbol
    assert after_push is not None and after_push.values == pushed.values
    assert after_push.event_time_ns == pushed_us * 1_000  # Redis keeps the microseconds
    assert dagster_side is not None and dagster_side.values == pushed.values
    assert dagster_side.event_time_ns == after_push.event_time_ns
    keys = Redis(host=redis.host, port=redis.port).dbsize()
    assert isinstance(keys, int) and keys >= len(SYMBOLS)
    assert not list(tmp_path.rglob("online_store.db"))


@pytest.mark.parametrize("variable", ["REDIS_CONNECTION_STRING", "FEAST_REGISTRY_PATH"])
def test_a_missing_feast_variable_stops_the_start_in_one_line_naming_it(
    variable, prod_environ, tmp_path, monkeypatch, capsys
):
    # Arrange
    monkeypatch.delenv(variable)

    # Act: the sidecar's start, Dagster's resources, and the Feast resource opened on its own
    with pytest.raises(SystemExit) as sidecar_exit:
        parse_args([])
    sidecar_message = capsys.readouterr().err
    with pytest.raises(SettingsError) as dagster_error:
        build_resources()
    with pytest.raises(SettingsError) as feast_error:
        FeastResource(environment="prod", data_root=str(tmp_path / "feast")).store()

    # Assert: one line each, naming the variable, no stack trace of Feast's
    assert sidecar_exit.value.code == 2
    assert sidecar_message.count("\n") == 1 and variable in sidecar_message
    assert "Traceback" not in sidecar_message
    for error in (dagster_error.value, feast_error.value):
        assert "\n" not in str(error) and str(error).startswith(variable)
    assert not (tmp_path / "feast").exists()
