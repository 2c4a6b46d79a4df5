"""The lakehouse in the production profile: an Iceberg SQL catalog in PostgreSQL and an ``s3://``
warehouse on a real S3 server (SeaweedFS), with resources built from the settings as
``TRADING_ENV=prod`` builds them. One simulator day of one symbol goes raw → bronze → silver →
bars → gold through the Dagster assets; every file lands on S3 and none on the local disk. The
sidecar's silver fallback then reads that silver from the same catalog in its worker process.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from streaming.config import parse_args
from streaming.fallback import IcebergSilverMicrobatch
from streaming.fallback.silver import features_from_silver
from streaming.prefetched_silver import open_silver
from streaming.silver_pull import SubprocessSilver
from streaming.simulator.server import run_simulator_in_thread
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.defs.features.assets import features
from trading_assets.defs.ingest.raw_trades import raw_trades
from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades
from trading_assets.lib.features import DEFAULT_CONFIG, TRADE_GROUPS, feature_names
from trading_assets.lib.lakehouse.bulk import raw_uri_for
from trading_assets.lib.lakehouse.pipeline import Lakehouse, read_silver, reconcile
from trading_assets.lib.lakehouse.schemas import (
    BARS_1M_TABLE,
    BARS_1S_TABLE,
    BRONZE_TRADES_TABLE,
    QUARANTINE_TABLE,
    SILVER_TRADES_TABLE,
    TableDef,
)
from trading_assets.lib.lakehouse.tables import count_partition, partition_filter
from trading_assets.resources import IcebergCatalogResource, build_resources
from trading_assets.servers import PostgresServer, S3Server, ensure_buckets

pytestmark = [pytest.mark.prod, pytest.mark.integration, pytest.mark.timeout(600)]

BUCKET = "trading"
SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # the lakehouse's: Binance spot's SYMBOL
DAY = dt.date(2024, 3, 1)
SEED, TRADES_PER_DAY = 5, 20_000
LAKEHOUSE_ASSETS = [raw_trades, bronze_trades, silver_trades, bars_1s, bars_1m, features]
TRADE_FEATURES = feature_names(DEFAULT_CONFIG, TRADE_GROUPS)
GOLD_TABLE = "gold.features"


@dataclass(frozen=True)
class ProdLake:
    """Where this module's lakehouse lives: a database of its own and an S3 prefix of its own."""

    catalog_uri: str
    warehouse: str
    data_dir: Path
    result: dg.ExecuteInProcessResult
    iceberg: IcebergCatalogResource

    def lakehouse(self) -> Lakehouse:
        """The lakehouse as a run opens it: the resource's ``dg.EnvVar`` fields resolved."""
        return self.iceberg.process_config_and_initialize().lakehouse()


def fresh_database(postgres: PostgresServer) -> str:
    """A new, empty database, so this catalog's tables meet no other test's."""
    name = f"iceberg_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return postgres.url(name)


def prod_environment(
    catalog_uri: str, warehouse: str, data_dir: Path, s3: S3Server, bulk_url: str
) -> dict[str, str]:
    """Every variable ``TRADING_ENV=prod`` requires (``.env.example``). MLflow and Redis are
    named but never reached: the lakehouse steps use the catalog, the warehouse and S3 only."""
    root = warehouse.rsplit("/", 1)[0]
    return {
        "TRADING_ENV": "prod",
        "TRADING_DATA_DIR": str(data_dir),
        "TRADING_INSTRUMENTS": INSTRUMENT,
        "TRADING_HISTORY_START": DAY.isoformat(),
        "BINANCE_BULK_BASE_URL": bulk_url,
        "TRADING_LANDING_URI": f"{root}/landing",
        "TRADING_MODELS_URI": f"{root}/models",
        "ICEBERG_CATALOG_URI": catalog_uri,
        "ICEBERG_WAREHOUSE": warehouse,
        "FEAST_REGISTRY_PATH": catalog_uri.rsplit("/", 1)[0] + "/feast",
        "FEAST_OFFLINE_ROOT": f"{root}/feast",
        "REDIS_CONNECTION_STRING": "127.0.0.1:1",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:1",
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }


@pytest.fixture(scope="module")
def prod_lake(
    postgres: PostgresServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> ProdLake:
    """The day backfilled through the assets with the prod profile's resources."""
    ensure_buckets(s3_server, [BUCKET])
    catalog_uri = fresh_database(postgres)
    warehouse = f"s3://{BUCKET}/{uuid.uuid4().hex}/warehouse"
    data_dir = tmp_path_factory.mktemp("prod") / "data"
    with (
        pytest.MonkeyPatch.context() as env,
        run_simulator_in_thread(
            symbols=[SYMBOL], seed=SEED, trades_per_day=TRADES_PER_DAY, live=False
        ) as sim,
    ):
        for name, value in prod_environment(
            catalog_uri, warehouse, data_dir, s3_server, sim.http_url
        ).items():
            env.setenv(name, value)
        resources = build_resources()
        result = dg.materialize(
            LAKEHOUSE_ASSETS,
            partition_key=f"{DAY.isoformat()}|{INSTRUMENT}",
            resources={k: resources[k] for k in ("iceberg", "binance_bulk", "feast")},
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    return ProdLake(catalog_uri, warehouse, data_dir, result, resources["iceberg"])


@pytest.fixture
def prod_env(prod_lake: ProdLake, s3_server: S3Server, monkeypatch) -> ProdLake:
    """The module's prod environment again (the bulk files' server is gone), for a test that
    reads the lake afterwards."""
    variables = prod_environment(
        prod_lake.catalog_uri, prod_lake.warehouse, prod_lake.data_dir, s3_server, "http://unused"
    )
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return prod_lake


def s3_keys(server: S3Server, location: str) -> set[str]:
    """Every object under ``location`` (``s3://bucket/prefix``) as full ``s3://`` URIs, listed by
    a client of the test's own (boto3)."""
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {f"s3://{bucket}/{item['Key']}" for page in pages for item in page.get("Contents", [])}


def data_files(lake: Lakehouse, table: TableDef) -> list[str]:
    tasks = (
        lake.table(table).refresh().scan(row_filter=partition_filter(DAY, INSTRUMENT)).plan_files()
    )
    return [task.file.file_path for task in tasks]


def test_the_day_lands_through_every_layer(prod_env):
    # Arrange
    lake = prod_env.lakehouse()
    published = SyntheticMarket(seed=SEED, trades_per_day=TRADES_PER_DAY).day_trades(SYMBOL, DAY)

    # Act
    counts = reconcile(lake, INSTRUMENT, DAY)
    silver = read_silver(lake, INSTRUMENT, DAY, ("trade_id",))

    # Assert: every asset ran, and raw = bronze = silver with nothing quarantined
    assert prod_env.result.success
    materialized = {
        e.asset_key.path[-1] for e in prod_env.result.get_asset_materialization_events()
    }
    assert materialized == {asset.key.path[-1] for asset in LAKEHOUSE_ASSETS}
    assert counts.raw_rows == counts.bronze_rows == counts.silver_rows == published.height
    assert counts.quarantine_rows == 0
    ids = silver["trade_id"].sort()
    assert ids.to_list() == list(range(ids[0], ids[0] + published.height))
    seconds_with_trades = (published["time"] // 1_000).n_unique()  # bulk times are in ms
    minutes_with_trades = (published["time"] // 60_000).n_unique()
    assert count_partition(lake.table(BARS_1S_TABLE), DAY, INSTRUMENT) == seconds_with_trades
    assert count_partition(lake.table(BARS_1M_TABLE), DAY, INSTRUMENT) == minutes_with_trades
    (gold_event,) = prod_env.result.asset_materializations_for_node("features")
    gold_rows = count_partition(lake.catalog.load_table(GOLD_TABLE), DAY, INSTRUMENT)
    assert gold_rows >= seconds_with_trades  # a row per second from the first bar on
    assert gold_rows == gold_event.metadata["offline_rows"].value  # and each one exported


def test_raw_and_table_files_are_objects_in_the_bucket_and_none_on_local_disk(prod_env, s3_server):
    # Arrange
    lake = prod_env.lakehouse()
    gold = lake.catalog.load_table(GOLD_TABLE)
    tables = [lake.table(t) for t in (BRONZE_TRADES_TABLE, SILVER_TRADES_TABLE, QUARANTINE_TABLE)]

    # Act
    objects = s3_keys(s3_server, prod_env.warehouse)
    raw_uri = raw_uri_for(lake.raw_root, SYMBOL, DAY)
    bucket, _, key = raw_uri.removeprefix("s3://").partition("/")
    raw_zip = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    # Assert: the raw zip and its CHECKSUM, every data file and every table's current metadata
    # are objects under the warehouse prefix
    assert lake.raw_root == f"{prod_env.warehouse}/raw"
    assert {raw_uri, f"{raw_uri}.CHECKSUM"} <= objects
    with zipfile.ZipFile(io.BytesIO(raw_zip)) as archive:
        (member,) = archive.namelist()
        assert member == f"{SYMBOL}-trades-{DAY.isoformat()}.csv"
    for table in (BRONZE_TRADES_TABLE, SILVER_TRADES_TABLE, BARS_1S_TABLE, BARS_1M_TABLE):
        files = data_files(lake, table)
        assert files and set(files) <= objects, table.identifier
    gold_files = [
        t.file.file_path for t in gold.scan(partition_filter(DAY, INSTRUMENT)).plan_files()
    ]
    assert gold_files and set(gold_files) <= objects
    for table in [*tables, gold]:
        assert table.metadata_location in objects
        assert table.metadata.location.startswith(f"{prod_env.warehouse}/")
    # Assert: gold's export for Feast's offline store went to S3 as well
    root = prod_env.warehouse.rsplit("/", 1)[0]
    assert any(key.endswith(".parquet") for key in s3_keys(s3_server, f"{root}/feast/"))
    # Assert: nothing of the lakehouse on this machine's disk (the data folder is for the
    # sidecar's landing buffer and embedded stores, none of which these steps use)
    local = [p for p in prod_env.data_dir.rglob("*") if p.is_file()]
    assert local == []


def test_the_sidecars_silver_fallback_reads_silver_from_the_prod_catalog(prod_env):
    # Arrange: the silver source the sidecar opens from its settings (the worker process that
    # reads silver; S3 credentials reach it through its environment)
    lake = prod_env.lakehouse()
    start = dt.datetime.combine(DAY, dt.time(11, 40), tzinfo=dt.UTC)
    start_ns, end_ns = (
        round(t.timestamp() * 1e9) for t in (start, start + dt.timedelta(minutes=20))
    )
    silver = open_silver(parse_args([]), TRADE_FEATURES)
    assert silver is not None
    source = silver.source
    assert isinstance(source, SubprocessSilver)
    assert (source.catalog_uri, source.warehouse) == (prod_env.catalog_uri, prod_env.warehouse)

    # Act
    try:
        pulled = source(INSTRUMENT, start_ns, end_ns)
    finally:
        source.close()

    # Assert: the worker's vector is the one recomputed in process from the same silver
    trades = IcebergSilverMicrobatch(lake)(INSTRUMENT, start_ns, end_ns)
    expected = features_from_silver(trades, TRADE_FEATURES, DEFAULT_CONFIG)
    assert trades.height > 0 and expected is not None and pulled.result is not None
    vector, event_time_ns = pulled.result
    assert start_ns < event_time_ns <= end_ns
    assert event_time_ns == expected[1]
    assert list(vector) == list(TRADE_FEATURES)
    assert pl.Series(list(vector.values())).equals(pl.Series(list(expected[0].values())))
