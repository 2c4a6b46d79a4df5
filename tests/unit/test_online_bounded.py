"""The bounded online reader: a read that hangs costs the caller ``wait_s`` once, then nothing
until it answers; a read that fails says why; the first answer ends the outage. The reads here
are plain functions that hang on an event or raise, standing in for a store's client."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from streaming.fallback import FallbackController, FallbackLevel
from streaming.online import BoundedOnlineReader, OnlineStoreUnavailable
from trading_assets.lib.feature_store.online_reader import OnlineRead

pytestmark = pytest.mark.faults

NS = 1_000_000_000


def _vector(now_ns: int) -> OnlineRead:
    return OnlineRead({"x": 1.0}, now_ns, 0.0001)


def test_a_hung_read_is_waited_for_once_and_later_reads_fail_at_once_until_it_answers():
    release = threading.Event()
    calls: list[str] = []

    def hanging_read(symbol: str) -> OnlineRead:
        calls.append(symbol)
        release.wait()
        return _vector(1)

    registry = CollectorRegistry()
    reader = BoundedOnlineReader(hanging_read, wait_s=0.01, registry=registry)
    with pytest.raises(OnlineStoreUnavailable, match="did not answer"):
        reader.read("BTCUSDT")
    started = time.perf_counter()
    with pytest.raises(OnlineStoreUnavailable, match="has not answered a read of BTCUSDT"):
        reader.read("ETHUSDT")
    assert time.perf_counter() - started < reader.wait_s  # no second wait on a dead store
    assert calls == ["BTCUSDT"]  # one read in flight, not one per tick
    assert registry.get_sample_value("sidecar_online_store_up") == 0

    release.set()
    deadline = time.monotonic() + 5
    while True:  # the late answer ends the outage; the next read goes to the store again
        try:
            assert reader.read("ETHUSDT") == _vector(1)
            break
        except OnlineStoreUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert reader.outage is None
    assert registry.get_sample_value("sidecar_online_store_up") == 1
    assert registry.get_sample_value("sidecar_online_read_failures_total", {"cause": "timeout"})
    reader.close()
    with pytest.raises(OnlineStoreUnavailable, match="closed"):
        reader.read("BTCUSDT")


def test_a_failed_read_names_the_clients_error():
    def refused(symbol: str) -> OnlineRead:
        raise ConnectionError(f"Error 111 connecting for {symbol}. Connection refused.")

    reader = BoundedOnlineReader(refused, wait_s=1.0)
    with pytest.raises(OnlineStoreUnavailable, match="ConnectionError: Error 111"):
        reader.read("BTCUSDT")
    assert reader.outage is not None and "Connection refused" in reader.outage
    reader.close()


def test_a_degraded_decision_explains_why_the_store_was_passed_over(caplog):
    def refused(symbol: str) -> OnlineRead:
        raise ConnectionError("Connection refused")

    reader = BoundedOnlineReader(refused, wait_s=1.0)
    controller = FallbackController(("x",), online=reader)
    with caplog.at_level("WARNING"):
        decisions = [controller.decide("BTCUSDT", t * NS) for t in range(1, 6)]
    reader.close()

    assert all(d.level is FallbackLevel.SAFE for d in decisions)
    assert all("online store read failed: ConnectionError" in d.explained for d in decisions)
    # One warning when the source starts failing, not one per tick of the outage.
    assert sum("online source failed" in r.getMessage() for r in caplog.records) == 1
