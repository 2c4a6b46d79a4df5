"""A landing location on the real S3 server (SeaweedFS) for the production-profile landing tests:
the environment a sidecar and a Dagster side on different machines share, and what the server
holds, read back with a client of its own."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from streaming.landing import TRADES_KIND, LandingWriter
from streaming.records import Trade
from streaming.simulator.synthetic import SyntheticMarket
from trading_assets.servers import S3Server, ensure_buckets

BUCKET = "landing-test"
RECEIVE_LAG_NS = 5_000_000


def use_s3_landing(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh ``s3://landing-test/<uuid>`` set as ``TRADING_LANDING_URI``, with the server's
    credentials in the environment; the landing folder is under the test's data folder."""
    ensure_buckets(s3_server, [BUCKET])
    root = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    environ = s3_server.env() | {
        "TRADING_ENV": "local",
        "TRADING_DATA_DIR": str(tmp_path / "data"),
        "TRADING_LANDING_URI": root,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return root


def objects_under(server: S3Server, location: str) -> dict[str, bytes]:
    """Every object under ``location`` by its key below it (every page of the listing); a key
    listed twice fails, since the listing is read as the server returns it."""
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    client = server.client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    assert len(keys) == len(set(keys)), "a key was listed twice"
    return {
        key.removeprefix(f"{prefix}/"): client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in keys
    }


def sealed_files(landing: Path) -> dict[str, bytes]:
    """The sealed segments of a landing folder by their key below it."""
    return {
        path.relative_to(landing).as_posix(): path.read_bytes()
        for path in sorted(landing.rglob("*.jsonl"))
    }


def synthetic_trades(symbol: str, day: dt.date, seed: int, per_day: int) -> list[Trade]:
    """The simulator's trades of ``day``, as the live stream delivers them."""
    frame = SyntheticMarket(seed=seed, trades_per_day=per_day).day_trades(symbol, day)
    return [
        Trade(
            symbol, row["id"], row["price"], row["qty"], row["is_buyer_maker"],
            row["time"] * 1_000_000, row["time"] * 1_000_000,
            row["time"] * 1_000_000 + RECEIVE_LAG_NS,
        )
        for row in frame.iter_rows(named=True)
    ]  # fmt: skip


def land_in_segments(landing: Path, trades: list[Trade], per_segment: int) -> int:
    """Land ``trades`` in sealed segments of ``per_segment`` each; how many segments."""
    sealed = 0
    with LandingWriter(landing, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600) as writer:
        for start in range(0, len(trades), per_segment):
            for record in trades[start : start + per_segment]:
                writer.write(record)
            sealed += len(writer.rotate())
    return sealed
