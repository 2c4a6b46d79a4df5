"""Per-message counts reach /metrics as the sidecar_messages counter and the lag gauge."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streaming.metrics import SidecarMetrics
from streaming.records import Trade


def samples(metrics: SidecarMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render()[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counts_and_the_newest_trades_lag_are_served_at_scrape_time() -> None:
    metrics = SidecarMetrics()
    btc, eth = metrics.messages.of("BTCUSDT"), metrics.messages.of("ETHUSDT")
    for _ in range(3):
        btc.book_tickers += 1
    for trade_id, lag_ms in ((1, 40), (2, 25)):
        eth.trades += 1
        eth.newest_trade = Trade(
            "ETHUSDT", trade_id, "1.0", "1.0", False, 1_000_000_000, None,
            1_000_000_000 + lag_ms * 1_000_000,
        )  # fmt: skip

    served = samples(metrics)

    book = (("stream", "bookTicker"), ("symbol", "BTCUSDT"))
    trade = (("stream", "trade"), ("symbol", "ETHUSDT"))
    assert served[("sidecar_messages_total", book)] == 3
    assert served[("sidecar_messages_total", trade)] == 2
    assert ("sidecar_messages_created", trade) in served
    assert ("sidecar_messages_total", (("stream", "trade"), ("symbol", "BTCUSDT"))) not in served
    assert served[("sidecar_message_lag_seconds", trade)] == 0.025
    assert ("sidecar_message_lag_seconds", book) not in served  # spot tickers carry no time
