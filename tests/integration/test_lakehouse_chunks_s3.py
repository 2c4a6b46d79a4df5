"""Chunked stages on an ``s3://`` warehouse (a real S3 server, SeaweedFS) give the day computed
whole: the raw zip streams from S3 by ranged reads, and each chunk fetches only the data files
whose statistics overlap its range."""

from __future__ import annotations

import uuid

import pytest
from polars.testing import assert_frame_equal

from tests.chunked_days import (
    KEYS,
    TINY,
    WHOLE,
    awkward_day_csv,
    lakehouse,
    run_day,
    table_rows,
    zipped,
)
from trading_assets.servers import S3Server, ensure_buckets

pytestmark = [pytest.mark.faults, pytest.mark.prod, pytest.mark.integration]

BUCKET = "trading"


def test_a_day_in_tiny_chunks_on_s3_equals_the_day_in_one_chunk(s3_server: S3Server, tmp_path):
    ensure_buckets(s3_server, [BUCKET])
    payload = zipped(awkward_day_csv())
    properties = {
        "s3.endpoint": s3_server.endpoint_url,
        "s3.region": s3_server.region,
        "s3.access-key-id": s3_server.access_key,
        "s3.secret-access-key": s3_server.secret_key,
    }
    warehouse = f"s3://{BUCKET}/{uuid.uuid4().hex}/warehouse"
    chunked = lakehouse(tmp_path / "s3", TINY, payload, warehouse, properties)
    whole = lakehouse(tmp_path / "local", WHOLE, payload)

    chunked_report, whole_report = run_day(chunked), run_day(whole)

    assert chunked_report == whole_report
    assert chunked.table(KEYS[0][0]).location().startswith("s3://")
    for table, key in KEYS:
        rows = table_rows(chunked, table, key)
        assert rows.height > 0, table.identifier
        assert_frame_equal(rows, table_rows(whole, table, key), check_exact=True)
