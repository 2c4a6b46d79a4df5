"""The metrics exporter's collectors against a real Dagster instance (a temporary DAGSTER_HOME,
materializations reported through Dagster's API) and a real MLflow registry (sqlite)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from tests.services import free_port
from trading_assets.defs.ingest.partitions import partition_key
from trading_assets.metrics_exporter import LIVE_INGEST_ASSETS, LiveIngestCollector
from trading_assets.metrics_exporter.model_aliases import (
    ModelAliasCollector,
    scrape_request_bounds,
)

UTC = dt.UTC
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(collector) -> Samples:
    """name, sorted labels → value of every sample the collector gives now."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def stamp(asset: str, symbol: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return "trading_asset_last_materialization_timestamp_seconds", (
        ("asset", asset),
        ("symbol", symbol),
    )


def lag(asset: str, symbol: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return "trading_live_partition_ingest_lag_seconds", (("asset", asset), ("symbol", symbol))


def open_instance(home: Path) -> dg.DagsterInstance:
    """The instance ``DagsterInstance.get()`` opens in ``home`` as DAGSTER_HOME, as the
    exporter opens it."""
    home.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(home))
        return dg.DagsterInstance.get()


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory):
    """One instance for the tests that only read it; each test keeps to symbols of its own."""
    with open_instance(tmp_path_factory.mktemp("instance") / "dagster_home") as opened:
        yield opened


def materialize(instance: dg.DagsterInstance, asset: str, day: dt.date, symbol: str) -> float:
    """Report a materialization of the partition; returns a time just before it was stored."""
    before = time.time()
    key = str(partition_key(day, symbol))
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=key))
    return before


def test_the_live_partition_materialized_today_gives_its_time_and_lag(instance):
    today = dt.datetime.now(UTC).date()
    before = materialize(instance, "silver_trades", today, "BTCUSDT")
    after = time.time()
    collector = LiveIngestCollector(instance, ["BTCUSDT", "ETHUSDT"], clock=lambda: after + 100)

    got = samples(collector)

    assert before <= got[stamp("silver_trades", "BTCUSDT")] <= after
    assert 100 <= got[lag("silver_trades", "BTCUSDT")] <= 100 + (after - before)
    # Neither another asset nor another symbol takes it for theirs.
    assert stamp("bronze_trades", "BTCUSDT") not in got
    assert stamp("silver_trades", "ETHUSDT") not in got
    assert got[lag("bronze_trades", "BTCUSDT")] > 86_400
    assert got[("trading_dagster_instance_up", ())] == 1.0


def test_a_later_rewrite_of_yesterday_does_not_hide_a_stale_today(instance):
    """The daily bulk file rewrites yesterday's partition after today's first pickup: the live
    partition is still today's, and its lag is what an alert must see."""
    now = dt.datetime.now(UTC)
    today, yesterday = now.date(), now.date() - dt.timedelta(days=1)
    before_today = materialize(instance, "bronze_trades", today, "XRPUSDT")
    between = time.time()
    materialize(instance, "bronze_trades", yesterday, "XRPUSDT")  # the bulk file, later
    after = time.time()
    collector = LiveIngestCollector(instance, ["XRPUSDT"], clock=lambda: after)

    got = samples(collector)

    assert before_today <= got[stamp("bronze_trades", "XRPUSDT")] <= between


def test_before_today_is_picked_up_yesterday_is_the_live_partition(instance):
    yesterday = dt.datetime.now(UTC).date() - dt.timedelta(days=1)
    before = materialize(instance, "features", yesterday, "SOLUSDT")
    after = time.time()
    collector = LiveIngestCollector(instance, ["SOLUSDT"], clock=lambda: after + 30)

    got = samples(collector)

    assert before <= got[stamp("features", "SOLUSDT")] <= after
    assert 30 <= got[lag("features", "SOLUSDT")] <= 30 + (after - before)


def test_without_any_materialization_the_lag_counts_from_yesterdays_start(instance):
    old = dt.datetime(2024, 3, 1, tzinfo=UTC).date()
    materialize(instance, "bars_1s", old, "ADAUSDT")  # two days and more back: not live
    clock = dt.datetime(2024, 3, 3, 6, 0, tzinfo=UTC).timestamp()
    collector = LiveIngestCollector(instance, ["ADAUSDT"], clock=lambda: clock)

    got = samples(collector)

    assert {name for name, _ in got} >= {"trading_live_partition_ingest_lag_seconds"}
    assert not any(name.endswith("_timestamp_seconds") for name, _ in got)
    # 2024-03-03 06:00 is 30 hours after 2024-03-02 00:00.
    assert {got[lag(asset, "ADAUSDT")] for asset in LIVE_INGEST_ASSETS} == {30 * 3600.0}


def test_an_unreadable_instance_is_reported_not_raised(tmp_path):
    home = tmp_path / "dagster_home"
    with open_instance(home) as instance:
        collector = LiveIngestCollector(instance, ["BTCUSDT"])
        assert samples(collector)[("trading_dagster_instance_up", ())] == 1.0
        shutil.rmtree(home)  # its sqlite files go with it

        got = samples(collector)

    assert got[("trading_dagster_instance_up", ())] == 0.0
    assert not any(name.startswith("trading_live") for name, _ in got)


def test_the_live_ingest_assets_are_the_live_jobs():
    from trading_assets.defs.features.assets import features
    from trading_assets.defs.features.cross import cross_features
    from trading_assets.defs.ingest.landing import live_trades_ingest
    from trading_assets.defs.ingest.raw_trades import raw_trades
    from trading_assets.defs.lakehouse.assets import bars_1m, bars_1s, bronze_trades, silver_trades

    assets = [raw_trades, bronze_trades, silver_trades, bars_1s, bars_1m, features, cross_features]
    selection = live_trades_ingest.selection
    assert selection is not None

    keys = selection.resolve(assets)

    assert {key.to_user_string() for key in keys} == set(LIVE_INGEST_ASSETS)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite MLflow registry with model ``signal``: @champion on version 1, @canary on 2."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("signal")
    source = root / "model"
    source.mkdir()
    for _ in range(2):
        client.create_model_version("signal", source=str(source))
    client.set_registered_model_alias("signal", "champion", "1")
    client.set_registered_model_alias("signal", "canary", "2")
    return uri


def test_each_alias_is_shown_with_its_version(registry):
    got = samples(ModelAliasCollector(registry, "signal"))

    info = {labels: v for (name, labels), v in got.items() if name == "trading_model_alias_info"}
    assert info == {
        (("alias", "canary"), ("model", "signal"), ("version", "2")): 1.0,
        (("alias", "champion"), ("model", "signal"), ("version", "1")): 1.0,
    }
    assert got[("trading_model_registry_up", (("model", "signal"),))] == 1.0


def test_a_model_not_registered_has_no_aliases_and_the_registry_is_up(registry):
    got = samples(ModelAliasCollector(registry, "missing"))

    assert got == {("trading_model_registry_up", (("model", "missing"),)): 1.0}


def test_a_server_that_does_not_answer_is_reported_within_the_scrape_bounds(monkeypatch):
    for name, value in scrape_request_bounds({}).items():
        monkeypatch.setenv(name, value)
    collector = ModelAliasCollector(f"http://127.0.0.1:{free_port()}", "signal")
    list(collector.collect())  # MLflow's REST client is imported at the first read

    started = time.monotonic()
    got = samples(collector)

    assert time.monotonic() - started < 2.0  # no retries
    assert got == {("trading_model_registry_up", (("model", "signal"),)): 0.0}


def test_scrapes_never_retry_and_wait_at_most_the_cap():
    assert scrape_request_bounds({"MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}) == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    assert (
        scrape_request_bounds({"MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})["MLFLOW_HTTP_REQUEST_TIMEOUT"]
        == "2"
    )
