"""The sidecar's Prometheus metrics, on a registry of its own.

A private ``CollectorRegistry`` (not prometheus_client's global one) keeps tests and several
sidecars in one process from colliding, and keeps ``/metrics`` to what the sidecar measures.
Rates (messages/s, predictions/s) are counters: Prometheus derives the rate with ``rate()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from trading_assets.lib.risk import RiskState, Transition

if TYPE_CHECKING:
    from streaming.ingest import MarketFeed
    from trading_assets.lib.risk import RiskEngine

# Single-row ONNX scoring takes tens of µs; a whole tick-to-prediction path a few ms.
LATENCY_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class SymbolMessages:
    """One symbol's message counts, newest trade and book ticker, set by the sidecar per
    message."""

    __slots__ = ("book_tickers", "created", "newest_book_ticker", "newest_trade", "trades")

    def __init__(self) -> None:
        self.trades = self.book_tickers = 0
        self.newest_trade: Any = None  # its newest Trade
        self.newest_book_ticker: Any = None  # its newest BookTicker
        self.created = time.time()  # the counters' ``_created`` sample


class MessageCounts:
    """Market data messages per stream and symbol, and the newest trade's lag, as Prometheus
    series (``sidecar_messages``, ``sidecar_message_lag_seconds``) built when scraped.

    Every message is counted, and prometheus_client's own series take a lock per update: here
    the hot path bumps a plain int (``of(symbol).trades += 1``, the sidecar keeping each
    symbol's object at hand) and keeps the newest trade, and the series are made from them at
    scrape time. Scrapes run on the sidecar's event loop, the same thread that counts.
    """

    def __init__(self) -> None:
        self.by_symbol: dict[str, SymbolMessages] = {}

    def of(self, symbol: str) -> SymbolMessages:
        """The symbol's counts (made at its first message)."""
        messages = self.by_symbol.get(symbol)
        if messages is None:
            messages = self.by_symbol[symbol] = SymbolMessages()
        return messages

    def collect(self) -> Iterator[Metric]:
        """The counter and the lag gauge as they are now."""
        counter = CounterMetricFamily(
            "sidecar_messages", "Market data messages received", labels=["stream", "symbol"]
        )
        lag = GaugeMetricFamily(
            "sidecar_message_lag_seconds",
            "Receive time minus exchange event time of the newest message",
            labels=["stream", "symbol"],
        )
        for symbol, messages in list(self.by_symbol.items()):
            counts = (("bookTicker", messages.book_tickers), ("trade", messages.trades))
            for stream, count in counts:
                if count:
                    counter.add_metric([stream, symbol], count, created=messages.created)
            trade = messages.newest_trade
            if trade is not None:
                lag.add_metric(["trade", symbol], (trade.receive_ns - trade.trade_ns) / 1e9)
        yield counter
        yield lag

    def describe(self) -> Iterator[Metric]:
        """The series' names, for the registry's duplicate check (no samples needed)."""
        yield CounterMetricFamily("sidecar_messages", "", labels=["stream", "symbol"])
        yield GaugeMetricFamily("sidecar_message_lag_seconds", "", labels=["stream", "symbol"])


class LandingShipping:
    """The landing shipper's state (``streaming.landing.shipper.ShipperState``) as Prometheus
    series, set by the sidecar as the shipper reports; no series while nothing is shipped."""

    def __init__(self) -> None:
        self.state: Any = None

    def show(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        if state is None:
            return
        yield from self._families(state)

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    @staticmethod
    def _families(state: Any) -> Iterator[Metric]:
        def value(name: str) -> float | None:
            return None if state is None else float(getattr(state, name))

        yield GaugeMetricFamily(
            "sidecar_landing_shipped_segments",
            "Sealed landing segments shipped to the landing location (its ledger's count)",
            value=value("shipped"),
        )
        yield GaugeMetricFamily(
            "sidecar_landing_ship_backlog_segments",
            "Sealed landing segments not shipped yet",
            value=value("backlog"),
        )
        yield CounterMetricFamily(
            "sidecar_landing_shipped_bytes",
            "Bytes the shipper uploaded",
            value=value("shipped_bytes"),
        )
        yield CounterMetricFamily(
            "sidecar_landing_ship_errors",
            "Failed shipping attempts and shipper exits",
            value=value("errors"),
        )
        failing = None if state is None else float(state.last_error is not None)
        yield GaugeMetricFamily(
            "sidecar_landing_ship_failing",
            "1 while the newest shipping attempt failed (its error is in the sidecar's log)",
            value=failing,
        )


class FeedConnection:
    """The market feeds' stream connections as Prometheus series, one per venue, read from the
    feeds when scraped: whether each is open (``sidecar_feed_connected``; one stream carries
    every instrument of a venue), connections opened, and reconnects by cause. No series until
    the feeds are shown."""

    def __init__(self) -> None:
        self.feeds: Mapping[str, MarketFeed] = {}

    def show(self, feeds: Mapping[str, MarketFeed]) -> None:
        self.feeds = feeds

    def collect(self) -> Iterator[Metric]:
        if self.feeds:
            yield from self._families(self.feeds)

    def describe(self) -> Iterator[Metric]:
        yield from self._families({})

    @staticmethod
    def _families(feeds: Mapping[str, MarketFeed]) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "sidecar_feed_connected",
            "1 while the venue's market WebSocket stream is open, 0 while it reconnects",
            labels=["venue"],
        )
        opened = CounterMetricFamily(
            "sidecar_feed_connections_opened",
            "Market stream connections opened (the first one and every reconnect)",
            labels=["venue"],
        )
        reconnects = CounterMetricFamily(
            "sidecar_feed_reconnects",
            "Market stream connections replaced or retried, by cause (dropped, server_closed, "
            "watchdog, max_age, rate_limited, connect_failed, sequence_gap, checksum_mismatch)",
            labels=["venue", "cause"],
        )
        for venue, feed in sorted(feeds.items()):
            connected.add_metric([venue], float(feed.connected))
            opened.add_metric([venue], float(feed.stats.connections_opened))
            for cause, count in sorted(feed.stats.reconnects.items()):
                reconnects.add_metric([venue, cause], count)
        yield from (connected, opened, reconnects)


class PaperAccount:
    """The risk engine's paper account (equity, P&L, drawdown, open exposure) and its decision
    counts as Prometheus series, read from the engine when scraped (on the event loop, the
    engine's one thread). No series until the engine is shown."""

    def __init__(self) -> None:
        self.engine: RiskEngine | None = None

    def show(self, engine: RiskEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        if self.engine is not None:
            yield from self._families(self.engine)

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    @staticmethod
    def _families(engine: RiskEngine | None) -> Iterator[Metric]:
        def value(read: Any) -> float | None:
            return None if engine is None else float(read(engine))

        yield GaugeMetricFamily(
            "sidecar_paper_equity",
            "Paper account equity, in units of its initial stake (starts at 1)",
            value=value(lambda e: e.equity / e.limits.initial_equity),
        )
        yield GaugeMetricFamily(
            "sidecar_paper_pnl",
            "Paper P&L after costs of the settled positions since start, in units of the "
            "initial stake",
            value=value(lambda e: (e.equity - e.limits.initial_equity) / e.limits.initial_equity),
        )
        yield GaugeMetricFamily(
            "sidecar_paper_drawdown_ratio",
            "Paper equity's drawdown from its high-water mark, 0 to 1 (HALTED at the limit)",
            value=value(lambda e: e.drawdown),
        )
        yield GaugeMetricFamily(
            "sidecar_paper_gross_exposure",
            "Sum of the open paper positions' absolute fractions of equity",
            value=value(lambda e: sum(abs(p.size_fraction) for p in e.positions.values())),
        )
        events = CounterMetricFamily(
            "sidecar_risk_events",
            "Risk engine decisions, trades, blocks by breaker (blocked_*), wins, losses, halts",
            labels=["event"],
        )
        for event, count in sorted((engine.counters if engine else {}).items()):
            events.add_metric([event], count)
        yield events


class SidecarMetrics:
    """Every metric the sidecar exports, registered on ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = MessageCounts()
        r.register(self.messages)
        self.shipping = LandingShipping()
        r.register(self.shipping)
        self.market_feed = FeedConnection()
        r.register(self.market_feed)
        self.paper = PaperAccount()
        r.register(self.paper)
        self.feature_age = Gauge(
            "sidecar_feature_age_seconds",
            "Age of the newest feature vector when it was scored",
            ["symbol"],
            registry=r,
        )
        self.fallback_level = Gauge(
            "sidecar_fallback_level",
            "Current fallback level: 1 online, 2 repaired, 3 imputed, 4 silver, 5 safe mode",
            ["symbol"],
            registry=r,
        )
        self.prediction_latency = Histogram(
            "sidecar_prediction_latency_seconds",
            "Feature read plus one model's own scoring and risk check",
            ["role"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.predictions = Counter(
            "sidecar_predictions", "Predictions served", ["symbol", "role"], registry=r
        )
        self.risk_score = Gauge("sidecar_risk_score", "Current risk score", ["symbol"], registry=r)
        self.trading_allowed = Gauge(
            "sidecar_trading_allowed",
            "1 when the prediction that drives the symbol's decisions trades, else 0",
            ["symbol"],
            registry=r,
        )
        self.risk_state = Gauge(
            "sidecar_risk_state",
            "1 for the risk engine's current state (ACTIVE, REDUCING, HALTED), 0 for the others",
            ["state"],
            registry=r,
        )
        self.risk_transitions = Counter(
            "sidecar_risk_transitions",
            "Risk engine state changes",
            ["from_state", "to_state"],
            registry=r,
        )
        self.show_risk_state(RiskState.ACTIVE)
        self.model_version = Gauge(
            "sidecar_model_version_info",
            "1 for the version each alias slot serves (absent when the slot is empty)",
            ["role", "version"],
            registry=r,
        )
        self.model_swaps = Counter(
            "sidecar_model_swaps",
            "Model slot changes by outcome (loaded, failed, removed)",
            ["role", "outcome"],
            registry=r,
        )
        self.ws_clients = Gauge(
            "sidecar_ws_clients", "Connected prediction stream clients", registry=r
        )
        self.ws_dropped = Counter(
            "sidecar_ws_dropped_messages",
            "Predictions dropped from slow stream clients' queues (oldest first)",
            registry=r,
        )
        self.landing_free_bytes = Gauge(
            "sidecar_landing_free_bytes",
            "Free bytes on the landing folder's filesystem (for an unprivileged writer)",
            registry=r,
        )
        self.landing_free_ratio = Gauge(
            "sidecar_landing_free_ratio",
            "Free share of the landing folder's filesystem, 0 to 1",
            registry=r,
        )
        self.landing_min_free_bytes = Gauge(
            "sidecar_landing_min_free_bytes",
            "Free bytes below which market-data landing pauses (TRADING_LANDING_MIN_FREE)",
            registry=r,
        )
        self.landing_paused = Gauge(
            "sidecar_landing_paused",
            "1 while market data is not landing (disk low or full); predictions are still served",
            registry=r,
        )
        self.landing_unlanded_trades = Gauge(
            "sidecar_landing_unlanded_trades",
            "Trades handed to landing while it was paused, not landed yet: fetched again by id "
            "once it resumes",
            registry=r,
        )
        self.landing_unfilled_gaps = Counter(
            "sidecar_landing_unfilled_gaps",
            "Stretches of trades missed while landing was paused that could not be fetched "
            "again (the venue serves no trade history, or lacks them); each is logged",
            ["symbol"],
            registry=r,
        )
        self.landing_unfilled_trades = Counter(
            "sidecar_landing_unfilled_trades",
            "Trades missed while landing was paused that could not be fetched again: a hole "
            "in the landed trades",
            ["symbol"],
            registry=r,
        )
        self._versions: dict[str, str] = {}

    def set_model_version(self, role: str, version: str | None) -> None:
        """Show ``version`` as the one ``role`` serves; ``None`` clears the slot's series."""
        previous = self._versions.pop(role, None)
        if previous is not None:
            self.model_version.remove(role, previous)
        if version is not None:
            self.model_version.labels(role, version).set(1)
            self._versions[role] = version

    def show_risk_state(self, state: RiskState) -> None:
        """Mark ``state`` as the risk engine's current one (every state keeps a series)."""
        for each in RiskState:
            self.risk_state.labels(each.value).set(float(each is state))

    def count_risk_transition(self, transition: Transition) -> None:
        """Count one state change and show its target (the risk engine's ``on_transition``)."""
        self.risk_transitions.labels(transition.from_state.value, transition.to_state.value).inc()
        self.show_risk_state(transition.to_state)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for ``/metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
