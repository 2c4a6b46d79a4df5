"""Fallback level 4 on a real sqlite-backed Iceberg catalog: a simulator day goes raw → bronze →
silver through the pipeline functions, then the controller recomputes features from a silver
microbatch; they must equal the batch features over the whole silver day at the same time. The
sidecar's non-blocking source serves the first level 4 decision once it has prefetched."""

from __future__ import annotations

import datetime as dt
import math
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from streaming.fallback import (
    FallbackBudgets,
    FallbackController,
    FallbackDecision,
    FallbackLevel,
    IcebergSilverMicrobatch,
)
from streaming.prefetched_silver import PrefetchedSilver
from streaming.silver_pull import PULL_TIMEOUT_S, SilverPullError, SubprocessSilver
from tests.lakehouse_days import simulated_silver_day
from trading_assets.lib.features import (
    ALL_GROUPS,
    DEFAULT_CONFIG,
    TRADE_GROUPS,
    compute_features,
    feature_names,
)
from trading_assets.lib.lakehouse.bars import bars_from_trades
from trading_assets.lib.lakehouse.pipeline import Lakehouse, read_silver
from trading_assets.lib.lakehouse.tables import open_catalog

pytestmark = pytest.mark.integration

INSTRUMENT = "BINANCE:BTCUSDT"
DAY = dt.date(2024, 3, 1)
TRADES_PER_DAY = 40_000
SIGNAL_V1 = feature_names(DEFAULT_CONFIG, ALL_GROUPS)  # book features included: NaN from silver
TRADE_FEATURES = feature_names(DEFAULT_CONFIG, TRADE_GROUPS)


@pytest.fixture(scope="module")
def location(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The catalog's URI and the warehouse's, as a sidecar configures them."""
    root: Path = tmp_path_factory.mktemp("iceberg")
    (root / "warehouse").mkdir()
    return f"sqlite:///{root}/catalog.db", (root / "warehouse").as_uri()


@pytest.fixture(scope="module")
def lake(location: tuple[str, str]) -> Iterator[Lakehouse]:
    uri, warehouse_uri = location
    # The name the sidecar opens it by (Dagster's catalog resource uses it too).
    catalog = open_catalog("trading", {"type": "sql", "uri": uri, "warehouse": warehouse_uri})
    lakehouse = Lakehouse(catalog, f"{warehouse_uri}/raw")
    simulated_silver_day(lakehouse, INSTRUMENT, DAY, seed=3, trades_per_day=TRADES_PER_DAY)
    yield lakehouse


@pytest.fixture(scope="module")
def batch(lake: Lakehouse) -> dict[int, dict[str, float | None]]:
    """Gold-style features over the whole silver day, by event time (ns)."""
    bars = bars_from_trades(read_silver(lake, INSTRUMENT, DAY))
    frame = compute_features(bars, DEFAULT_CONFIG, TRADE_GROUPS, bar_s=1)
    stamps = frame["event_timestamp"].dt.epoch("ns").to_list()
    return dict(zip(stamps, frame.select(TRADE_FEATURES).to_dicts(), strict=True))


def at(day: dt.date, hour: int, minute: int, second: float = 0.0) -> int:
    start = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=dt.UTC)
    return round((start.timestamp() + second) * 1e9)


@pytest.mark.parametrize(
    "now_ns",
    [at(DAY, 12, 0, 0.5), at(DAY + dt.timedelta(days=1), 0, 4)],
    ids=["midday", "after-midnight-reads-two-partitions"],
)
def test_silver_microbatch_reproduces_the_batch_features(lake, batch, now_ns):
    controller = FallbackController(SIGNAL_V1, silver=IcebergSilverMicrobatch(lake))

    decision = controller.decide(INSTRUMENT, now_ns)

    assert decision.level is FallbackLevel.SILVER, decision.reason
    assert decision.event_time_ns is not None and decision.event_time_ns <= now_ns
    expected = batch[decision.event_time_ns]
    for name in TRADE_FEATURES:
        want = expected[name]
        assert want is not None, f"{name} still warming up at the compared time"
        assert math.isclose(decision.features[name], want, rel_tol=1e-9, abs_tol=1e-12), name
    book = [n for n in SIGNAL_V1 if n not in TRADE_FEATURES]
    assert all(math.isnan(decision.features[n]) for n in book)
    coverage = len(TRADE_FEATURES) / len(SIGNAL_V1)
    assert decision.confidence_multiplier == pytest.approx(
        controller.budgets.silver_confidence * coverage
    )


def test_silver_microbatch_holds_only_the_requested_interval(lake):
    start_ns, end_ns = at(DAY, 12, 0), at(DAY, 12, 20)

    trades = IcebergSilverMicrobatch(lake)(INSTRUMENT, start_ns, end_ns)

    times = trades["event_time"].dt.epoch("ns")
    assert trades.height > 0
    assert times.min() >= start_ns and times.max() <= end_ns  # type: ignore[operator]
    assert trades["trade_id"].is_sorted()
    whole_day = read_silver(lake, INSTRUMENT, DAY)
    inside = whole_day.filter(pl.col("event_time").dt.epoch("ns").is_between(start_ns, end_ns))
    assert trades.height == inside.height


def test_silver_older_than_its_budget_means_safe_mode(lake):
    controller = FallbackController(SIGNAL_V1, silver=IcebergSilverMicrobatch(lake))

    decision = controller.decide(INSTRUMENT, at(DAY + dt.timedelta(days=1), 0, 30))

    assert decision.level is FallbackLevel.SAFE and not decision.can_trade
    assert "silver: no trades in the last 1200 s" in decision.reason


def test_a_prefetched_microbatch_serves_the_first_level_4_decision(lake):
    now_ns = at(DAY, 12, 0, 0.5)
    lookback_ns = round(FallbackBudgets().silver_lookback_s * 1e9)
    cold = PrefetchedSilver(IcebergSilverMicrobatch(lake))
    warm = PrefetchedSilver(IcebergSilverMicrobatch(lake))
    warm.prefetch(INSTRUMENT, now_ns - lookback_ns, now_ns)
    assert warm.wait_fetched(INSTRUMENT, timeout=60)
    direct = FallbackController(SIGNAL_V1, silver=IcebergSilverMicrobatch(lake))

    from_cold = FallbackController(SIGNAL_V1, silver=cold).decide(INSTRUMENT, now_ns)
    from_warm = FallbackController(SIGNAL_V1, silver=warm).decide(INSTRUMENT, now_ns)
    expected = direct.decide(INSTRUMENT, now_ns)

    # Without a prefetch the first call has nothing yet: safe mode until the next pull.
    assert from_cold.level is FallbackLevel.SAFE
    assert "silver: no trades in the last 1200 s" in from_cold.reason
    assert cold.wait_fetched(INSTRUMENT, timeout=60)  # its background fetch ends before teardown
    # With one, the first decision is the same level 4 vector a blocking read gives.
    assert from_warm.level is FallbackLevel.SILVER, from_warm.reason
    assert from_warm.event_time_ns == expected.event_time_ns
    assert from_warm.features.keys() == expected.features.keys()
    for name in TRADE_FEATURES:
        assert from_warm.features[name] == expected.features[name], name


def test_pulls_in_a_worker_process_give_the_in_process_vector(lake, location):
    # Arrange: the sidecar's source (read and recompute in `python -m streaming.silver_pull`)
    # next to the in-process one, on the same catalog; its worker exits after 1 s idle
    uri, warehouse = location
    now_ns = at(DAY, 12, 0, 0.5)
    source = SubprocessSilver(uri, warehouse, SIGNAL_V1, idle_exit_s=1.0)

    def decide(silver) -> FallbackDecision:
        return FallbackController(SIGNAL_V1, silver=silver).decide(INSTRUMENT, now_ns)

    # Act: two pulls back to back, then one after the worker has gone idle
    try:
        expected = decide(IcebergSilverMicrobatch(lake))
        first, second = decide(source), decide(source)
        starts_for_two = source.starts
        deadline = time.monotonic() + 60
        while source.pid is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        exited_idle = source.pid is None
        third = decide(source)
    finally:
        source.close()

    # Assert: the same level 4 vector, bit for bit (NaN where silver has no book data), from
    # one worker for the first two pulls and a new one after the idle exit
    for got in (first, second, third):
        assert got.level is FallbackLevel.SILVER, got.reason
        assert got.event_time_ns == expected.event_time_ns
        assert list(got.features) == list(expected.features) == list(SIGNAL_V1)
        for name in SIGNAL_V1:
            want, have = expected.features[name], got.features[name]
            assert (math.isnan(want) and math.isnan(have)) or want == have, name
    assert starts_for_two == 1
    assert exited_idle and source.starts == 2


def test_a_failed_child_pull_is_reported_and_the_controller_goes_on(tmp_path):
    missing = f"sqlite:///{tmp_path / 'no' / 'catalog.db'}"
    source = SubprocessSilver(missing, (tmp_path / "warehouse").as_uri(), SIGNAL_V1)
    controller = FallbackController(SIGNAL_V1, silver=source)

    decision = controller.decide(INSTRUMENT, at(DAY, 12, 0))
    source.close()

    assert decision.level is FallbackLevel.SAFE and not decision.can_trade
    assert "silver: pull failed: _WorkerGone('silver pull worker exited with 1" in decision.reason


def test_the_catalog_uri_reaches_the_child_by_environment_not_command_line():
    # A PostgreSQL catalog's URI carries its password; command lines are readable by all users.
    source = SubprocessSilver("postgresql://trading:s3cret@db/iceberg", "s3://wh", SIGNAL_V1)

    command = source.command()

    assert not any("s3cret" in part for part in command)
    assert command[:3] == [sys.executable, "-m", "streaming.silver_pull"]


def test_closing_the_source_ends_a_pull_in_flight_and_its_worker(lake, location):
    # Arrange: a pull that is still importing in its new worker when the sidecar shuts down
    uri, warehouse = location
    source = SubprocessSilver(uri, warehouse, SIGNAL_V1)
    failures: list[Exception] = []

    def pull() -> None:
        try:
            source(INSTRUMENT, at(DAY, 11, 40), at(DAY, 12, 0))
        except Exception as exc:
            failures.append(exc)

    puller = threading.Thread(target=pull)
    puller.start()
    deadline = time.monotonic() + 30
    while source.pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = source.pid

    # Act
    source.close()
    puller.join(PULL_TIMEOUT_S / 4)  # the pull's own timeout is 120 s

    # Assert: the pull failed instead of holding shutdown up, and no worker runs or starts again
    assert worker is not None and not puller.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], SilverPullError)
    assert source.pid is None and source.starts == 1
