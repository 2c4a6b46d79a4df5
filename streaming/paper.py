"""The sidecar's paper accounts: one per model role, trading every prediction of its role on the
live market with the backtest's own trader (:class:`trading_assets.lib.backtest.paper.PaperTrader`).

Each role's account (champion, canary, shadow) trades as if its model drove: the same decision
path, risk engine and fill model as the backtest. An order reaches the venue ``latency`` after
its decision and fills on the market as it stands then: the captured L2 book (the very book the
landed lines rebuild to), else the newest book ticker, else the last trade price with half the
assumed spread. Before the sidecar applies a record received at R, the orders due before R fill
(:meth:`PaperDesk.before`), so a fill sees the book exactly as a rebuild to its time does.

Every decision and fill is landed (kinds ``paper_decisions`` and ``paper_fills``) and counted on
``/metrics``; ``/paper`` shows each account.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from streaming.config import SidecarConfig
from streaming.landing import LandingWriter
from streaming.records import BookTicker
from trading_assets.lib.backtest.fills import (
    UNITS,
    Fill,
    fill_on_bar,
    fill_on_book,
    fill_on_ticker,
)
from trading_assets.lib.backtest.paper import PaperConfig, PaperTrader
from trading_assets.lib.backtest.records import PaperDecision, known, paper_fill
from trading_assets.lib.book.rebuild import Book
from trading_assets.lib.feature_store.spec import FEATURE_CONFIG
from trading_assets.lib.lakehouse.landing_layout import PAPER_DECISIONS_KIND, PAPER_FILLS_KIND
from trading_assets.lib.models.policy import SPREAD_FEATURE
from trading_assets.lib.risk import RiskLimits

if TYPE_CHECKING:
    from streaming.book.capture import BookCapture
    from streaming.trading import Trader

log = logging.getLogger(__name__)
VOLATILITY = "rv_60s"
FILLS_KEPT = 1_000  # per role, for /paper


class LiveMarket:
    """One instrument's live market for the paper trader: the captured book when synced, else
    the newest book ticker, else the last trade price."""

    def __init__(
        self,
        book: Callable[[], Book | None],
        ticker: Callable[[], BookTicker | None],
        last_price: Callable[[], float | None],
        bar_spread_bps: float,
    ) -> None:
        self._book, self._ticker, self._last_price = book, ticker, last_price
        self.bar_spread_bps = bar_spread_bps

    def mid(self, now_ns: int) -> float | None:
        """The mid price now (``now_ns`` is the caller's clock; the data is the newest)."""
        book = self._book()
        if book is not None and book.best_bid is not None and book.best_ask is not None:
            return (book.best_bid + book.best_ask) * UNITS / 2
        ticker = self._ticker()
        if ticker is not None:
            return (float(ticker.bid_price) + float(ticker.ask_price)) / 2
        return self._last_price()

    def fill(
        self, now_ns: int, notional: float, fee_bp: float, quantity: float | None = None
    ) -> Fill | None:
        """An order filled now on the best data (see the class)."""
        book = self._book()
        if book is not None:
            filled = fill_on_book(book, notional, fee_bp, quantity)
            if filled is not None:
                return filled
        ticker = self._ticker()
        if ticker is not None:
            return fill_on_ticker(float(ticker.bid_price), float(ticker.bid_qty),
                                  float(ticker.ask_price), float(ticker.ask_qty), notional,
                                  fee_bp, quantity)  # fmt: skip
        price = self._last_price()
        if price is None:
            return None
        return fill_on_bar(price, notional, self.bar_spread_bps, fee_bp, quantity)


class PaperMetrics:
    """The accounts on ``/metrics`` (``sidecar_paper_account_*``; ``sidecar_paper_*`` is the risk
    engine's own price-move estimate of the driving role's equity)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        prefix, role = "sidecar_paper_account", ["role"]
        self.equity = Gauge(f"{prefix}_equity", "Paper account equity (quote) at the mids", role,
                            registry=registry)  # fmt: skip
        self.position = Gauge(f"{prefix}_position", "Paper position (base quantity)",
                              [*role, "symbol"], registry=registry)  # fmt: skip
        self.fills = Counter(f"{prefix}_fills", "Paper fills, by the data they filled on",
                             [*role, "symbol", "source"], registry=registry)  # fmt: skip
        self.fees = Counter(f"{prefix}_fees", "Fees the paper fills paid (quote)", role,
                            registry=registry)  # fmt: skip
        self.errors = Counter(f"{prefix}_errors", "Paper decisions or fills that failed (logged)",
                              registry=registry)  # fmt: skip


class PaperDesk:
    """Every role's paper account (see the module). ``land_decision`` and ``land_fill`` write
    the landed lines."""

    def __init__(
        self,
        markets: Mapping[str, LiveMarket],
        config: PaperConfig,
        registry: CollectorRegistry,
        land_decision: Callable[[PaperDecision], None],
        land_fill: Callable[[Any], None],
    ) -> None:
        self.markets, self.config = markets, config
        self.metrics = PaperMetrics(registry)
        self.traders: dict[str, PaperTrader] = {}
        self._land_decision, self._land_fill = land_decision, land_fill
        self._due_ns = math.inf  # the earliest order in flight, over every role

    def on_prediction(
        self,
        role: str,
        version: str,
        symbol: str,
        now_ns: int,
        predicted_return: float,
        values: Mapping[str, float],
        fallback_level: int,
        signal_scale: float,
    ) -> None:
        """Trade one prediction of ``role``'s model, whose signal scale is ``signal_scale`` (the
        orders due by now fill first). A failure is logged and counted, never raised: the paper
        accounts must not cost a prediction."""
        if symbol not in self.markets:
            return
        try:
            self._trade(role, version, symbol, now_ns, predicted_return, values, fallback_level,
                        signal_scale)  # fmt: skip
        except Exception:
            self.metrics.errors.inc()
            log.exception("paper account of %s failed on %s", role, symbol)

    def _trade(
        self,
        role: str,
        version: str,
        symbol: str,
        now_ns: int,
        predicted_return: float,
        values: Mapping[str, float],
        fallback_level: int,
        signal_scale: float,
    ) -> None:
        self._fill_due(now_ns + 1)
        trader = self.traders.get(role)
        if trader is None:
            trader = self.traders[role] = PaperTrader(self.markets, self.config)
        spread = values.get(SPREAD_FEATURE, math.nan)
        volatility = values.get(VOLATILITY, math.nan)
        self._land_decision(PaperDecision(
            role=role, version=version, symbol=symbol, time_ns=now_ns,
            predicted_return=known(predicted_return), spread_bps=known(spread),
            rv_60s=known(volatility),
            fallback_level=fallback_level, signal_scale=signal_scale,
        ))  # fmt: skip
        trader.decide(now_ns, symbol, predicted_return, spread, volatility, fallback_level,
                      signal_scale)  # fmt: skip
        self._due_ns = min([self._due_ns, *(o.at_ns for o in trader.pending)])
        self._observe(role, trader)

    def before(self, receive_ns: int) -> None:
        """Fill every order that reached the venue before ``receive_ns`` (call it before the
        sidecar applies a record received then). A failure is logged and counted, never raised."""
        if receive_ns <= self._due_ns:
            return
        try:
            self._fill_due(receive_ns)
        except Exception:
            self.metrics.errors.inc()
            self._due_ns = math.inf  # not again on every record; the next decision resets it
            log.exception("paper fills before %d failed", receive_ns)

    def _fill_due(self, receive_ns: int) -> None:
        if receive_ns <= self._due_ns:
            return
        due = math.inf
        for role, trader in self.traders.items():
            rows = trader.execute_until(receive_ns - 1)
            del trader.fills[:-FILLS_KEPT]
            for row in rows:
                fill = paper_fill(role, row)
                self._land_fill(fill)
                self.metrics.fills.labels(role, fill.symbol, fill.source).inc()
                self.metrics.fees.labels(role).inc(fill.fee)
            if rows:
                self._observe(role, trader)
            due = min([due, *(o.at_ns for o in trader.pending)])
        self._due_ns = due

    def _observe(self, role: str, trader: PaperTrader) -> None:
        self.metrics.equity.labels(role).set(trader.equity)
        for symbol in self.markets:
            quantity = trader.account.quantities.get(symbol, 0.0)
            self.metrics.position.labels(role, symbol).set(quantity)

    def snapshot(self) -> dict[str, Any]:
        """Each role's account: equity, cash, P&L, fees, positions and its newest fills."""
        accounts = {}
        for role, trader in self.traders.items():
            account = trader.account
            accounts[role] = {
                "equity": trader.equity,
                "cash": account.cash,
                "pnl": trader.equity - self.config.initial_cash,
                "fees": account.fees,
                "fills": account.fills,
                "positions": {
                    symbol: {"quantity": q, "mark": trader.marks.get(symbol)}
                    for symbol, q in account.quantities.items()
                },
                "orders_in_flight": len(trader.pending),
                "risk_state": str(trader.risk.state),
                "recent_fills": [paper_fill(role, row) for row in trader.fills[-20:]],
            }
        return {"initial_cash": self.config.initial_cash, "accounts": accounts}


def paper_config(config: SidecarConfig) -> PaperConfig:
    """The accounts' trading terms: the sidecar's costs, the label horizon, the default limits."""
    return PaperConfig(
        horizon_s=FEATURE_CONFIG.label_horizon_s,
        fee_bp=config.fee_bp,
        assumed_spread_bps=config.assumed_spread_bps,
        limits=RiskLimits(fee_bp=config.fee_bp),
    )


def build_paper_desk(
    config: SidecarConfig, book: BookCapture | None, trader: Trader, registry: CollectorRegistry
) -> tuple[PaperDesk, dict[str, LandingWriter]]:
    """A desk over every instrument's live market (a book only where one is captured), and the
    writers landing its decisions and fills."""
    root = config.landing_root
    writers = {kind: LandingWriter(root, kind, inline_poll=False)
               for kind in (PAPER_DECISIONS_KIND, PAPER_FILLS_KIND)}  # fmt: skip
    books = book.book_readers() if book is not None else {}
    terms = paper_config(config)
    markets = {
        i: LiveMarket(books.get(i, _no_book), _bound(trader.last_book_ticker, i),
                      _bound(trader.last_price, i), terms.assumed_spread_bps)
        for i in config.instruments
    }  # fmt: skip
    desk = PaperDesk(markets, terms, registry, writers[PAPER_DECISIONS_KIND].write,
                     writers[PAPER_FILLS_KIND].write)  # fmt: skip
    return desk, writers


def _no_book() -> Book | None:
    return None


def _bound(read: Callable[[str], Any], instrument: str) -> Callable[[], Any]:
    return lambda: read(instrument)
