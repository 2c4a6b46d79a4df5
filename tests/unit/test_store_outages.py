"""Which errors say a store was unreachable: those of the real clients, each asked to reach a
port where nothing listens (what a client sees while its server is down), wrapped or not; and
which do not (bad data, a missing file, a wrong password). MLflow's are in
tests/unit/test_mlflow_outage.py, with the bounds on its requests."""

from __future__ import annotations

import socket

import pytest

from trading_assets.lib.store_outages import describe, outage_cause
from trading_assets.servers import LOOPBACK, free_port

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A loopback port nothing listens on: every connection is refused at once."""
    return free_port()


def postgres_error(port: int) -> Exception:
    import psycopg2

    try:
        psycopg2.connect(host=LOOPBACK, port=port, user="u", dbname="d", connect_timeout=2)
    except Exception as error:
        return error
    raise AssertionError("connected to a closed port")


def sqlalchemy_error(port: int) -> Exception:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://u@{LOOPBACK}:{port}/d")
    try:
        engine.connect()
    except Exception as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError("connected to a closed port")


def boto3_error(port: int) -> Exception:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=f"http://{LOOPBACK}:{port}", region_name="us-east-1",
        aws_access_key_id="k", aws_secret_access_key="s",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )  # fmt: skip
    try:
        client.head_object(Bucket="b", Key="k")
    except Exception as error:
        return error
    raise AssertionError("reached a closed port")


def pyarrow_s3_error(port: int) -> Exception:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(
        endpoint_override=f"{LOOPBACK}:{port}", scheme="http", access_key="k", secret_key="s",
        region="us-east-1", connect_timeout=1,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )  # fmt: skip
    try:
        fs.get_file_info("bucket/key.parquet")
    except Exception as error:
        return error
    raise AssertionError("reached a closed port")


def redis_error(port: int) -> Exception:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(
        host=LOOPBACK, port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except Exception as error:
        return error
    raise AssertionError("reached a closed port")


def socket_error(port: int) -> Exception:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1)
    except Exception as error:
        return error
    raise AssertionError("reached a closed port")


CLIENTS = [postgres_error, sqlalchemy_error, boto3_error, pyarrow_s3_error, redis_error,
           socket_error]  # fmt: skip


@pytest.mark.parametrize("client_error", CLIENTS, ids=lambda f: f.__name__)
def test_a_client_that_cannot_reach_its_server_is_an_outage(client_error, closed_port):
    error = client_error(closed_port)

    assert outage_cause(error) is error, describe(error)


def test_an_outage_is_found_behind_the_wrappers_of_the_libraries_above(closed_port):
    refused = postgres_error(closed_port)
    try:
        try:
            raise RuntimeError("failed to load table silver.trades") from refused
        except RuntimeError:
            raise ValueError("bronze step failed") from None  # suppressed: still the context
    except ValueError as wrapped:
        error = wrapped

    assert outage_cause(error) is refused


@pytest.mark.parametrize(
    "error",
    [
        ValueError("trade_id is not an integer on line 7"),
        KeyError("price"),
        FileNotFoundError(2, "No such file or directory", "/data/raw/BTCUSDT.zip"),
        OSError("Parquet magic bytes not found in footer"),
        RuntimeError("the gate failed: IC 0.01 < 0.02"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_of_the_work_itself_is_not_an_outage(error):
    assert outage_cause(error) is None


def test_an_error_that_waiting_cannot_mend_is_not_an_outage():
    import psycopg2

    wrong_password = psycopg2.OperationalError(
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
        'authentication failed for user "postgres"'
    )

    assert outage_cause(wrong_password) is None


def test_an_error_is_described_on_one_line():
    error = OSError("AWS Error NETWORK_CONNECTION during HeadObject\ndetails: curl")

    assert describe(error) == "OSError: AWS Error NETWORK_CONNECTION during HeadObject"
