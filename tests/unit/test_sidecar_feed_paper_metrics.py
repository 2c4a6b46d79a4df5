"""The market feed's connection and the risk engine's paper account reach /metrics, read from
the feed and the engine at scrape time."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streaming.ingest import MarketFeed
from streaming.ingest.backoff import Backoff
from streaming.metrics import SidecarMetrics
from tests.services import free_port
from trading_assets.lib.risk import RiskEngine

NS = 1_000_000_000
Served = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: SidecarMetrics) -> Served:
    text = metrics.render()[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_nothing_is_served_before_the_feed_and_the_engine_are_shown():
    served = samples(SidecarMetrics())

    assert not any(name.startswith(("sidecar_feed_", "sidecar_paper_")) for name, _ in served)


async def test_a_feed_that_cannot_connect_is_served_as_disconnected_with_its_causes(
    tmp_path: Path,
):
    metrics = SidecarMetrics()
    port = free_port()  # nothing listens
    feed = MarketFeed(
        f"ws://127.0.0.1:{port}",
        f"http://127.0.0.1:{port}",
        ["BTCUSDT"],
        dead_letter_path=tmp_path / "dead.jsonl",
        backoff=Backoff(initial_s=0.01, max_s=0.01),
    )
    metrics.market_feed.show({"BINANCE": feed})

    async with feed:
        reading = asyncio.create_task(anext(feed))
        try:
            async with asyncio.timeout(10):
                while feed.stats.reconnects["connect_failed"] < 2:
                    await asyncio.sleep(0.01)
            served = samples(metrics)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    venue = (("venue", "BINANCE"),)
    assert served[("sidecar_feed_connected", venue)] == 0.0
    assert served[("sidecar_feed_connections_opened_total", venue)] == 0.0
    failed = served[("sidecar_feed_reconnects_total", (("cause", "connect_failed"), *venue))]
    assert failed >= 2


def test_the_paper_account_is_the_engines_equity_pnl_drawdown_and_exposure():
    metrics = SidecarMetrics()
    engine = RiskEngine()
    metrics.paper.show(engine)
    now = 1_700_000_000 * NS

    decision = engine.assess("BINANCE:BTCUSDT", now, 0.9, 0.9, 1, 0.01, price=100.0, target=1.0)
    opened = samples(metrics)
    engine.settle("BINANCE:BTCUSDT", now + 60 * NS, 90.0)  # a 10 % fall on a long position
    settled = samples(metrics)

    assert decision.should_trade and decision.size_fraction > 0
    assert opened[("sidecar_paper_gross_exposure", ())] == pytest.approx(decision.size_fraction)
    assert opened[("sidecar_paper_equity", ())] == 1.0  # nothing settled yet
    assert settled[("sidecar_paper_gross_exposure", ())] == 0.0
    assert settled[("sidecar_paper_pnl", ())] == pytest.approx(engine.equity - 1.0)
    assert settled[("sidecar_paper_pnl", ())] < -0.1 * decision.size_fraction * 0.99
    assert settled[("sidecar_paper_equity", ())] == pytest.approx(engine.equity)
    assert settled[("sidecar_paper_drawdown_ratio", ())] == pytest.approx(engine.drawdown)
    assert settled[("sidecar_paper_drawdown_ratio", ())] > 0
    events = {
        labels[0][1]: value
        for (name, labels), value in settled.items()
        if name == "sidecar_risk_events_total"
    }
    assert events == {"decisions": 1, "trades": 1, "losses": 1}
