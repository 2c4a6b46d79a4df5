"""Model inputs do not depend on the price level or the volume unit.

Property: quote every price ×k and every quantity ÷k (another price regime, another quote
currency or quantity step) and every feature a model may read is unchanged, in batch and live;
every feature that does change is one the definitions mark display-only (a level). It runs over
every feature the definitions list, so a new level feature left unmarked fails here.

Inputs stay exact under scaling: prices are whole cents (1e6 units of 1e-8) and quantities whole
multiples of 3,700 units, so price × k and quantity ÷ k are whole 1e-8 units for k = 10, 1/1000 and
37, and every trade's notional (price × quantity, a whole number of 1e-8 units) is the same number
of units before and after. What remains is float rounding: each scaled price is its own correctly
rounded float, so a quotient of prices or of quantities (a log return, vwap_dev, an imbalance) may
move by an ulp of 1 or so when scaled (measured: at most 1 machine epsilon, on vwap_dev values
near 1e-8). Values therefore agree within 1e-9 relative or 4 machine epsilons absolute: that
rounding, and nothing a level could hide in, since a level moves by the factor k itself.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from streaming.records import BookTicker, Trade
from streaming.simulator.binance.bulk_format import format_e8
from trading_assets.lib.features import (
    ALL_GROUPS,
    DEFAULT_CONFIG,
    FeatureConfig,
    LiveFeatures,
    book_frame,
    compute_features,
    feature_names,
    level_feature_names,
    model_feature_names,
    trades_frame,
)
from trading_assets.lib.lakehouse.bars import bars_from_trades

SYMBOL = "ETHUSDT"
START_NS = 1_709_251_200 * 10**9  # 2024-03-01 00:00 UTC
SECONDS = 1_100  # the 900 s windows warm up after 900 s
CENT_UNITS = 1_000_000  # 0.01 in 1e-8 units: the price tick
QUANTITY_STEP_UNITS = 3_700  # quantity ÷ 10 and ÷ 37 stay whole; cents × it are whole units
SCALES = (Fraction(10), Fraction(1, 1000), Fraction(37))
SHORT_WINDOWS = FeatureConfig(windows_s=(1, 7, 30, 240))
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 4 * sys.float_info.epsilon

Record = Trade | BookTicker
# (receive ns, kind, id, price units, quantity units, is buyer maker, ask units, ask qty units)
Event = tuple[int, str, int, int, int, bool, int, int]


def market_events(seed: int = 7) -> list[Event]:
    """A random walk of trades (0-4 a second, whole cents, some quiet seconds) and a book ticker
    about every 400 ms, in 1e-8 units, in receive order."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    price = 2_000 * 100 * CENT_UNITS
    trade_id = 1_000
    for second in range(SECONDS):
        for offset_ms in np.sort(rng.integers(0, 1_000, rng.integers(0, 5))):
            price += int(rng.integers(-3, 4)) * CENT_UNITS
            quantity = int(rng.integers(1, 2_000)) * QUANTITY_STEP_UNITS
            trade_ns = START_NS + second * 10**9 + int(offset_ms) * 10**6
            events.append(
                (trade_ns + 2_000_000, "trade", trade_id, price, quantity, bool(rng.random() < 0.5),
                 0, 0)
            )  # fmt: skip
            trade_id += 1
        for offset_ms in (0, 400, 800):
            bid = price - int(rng.integers(0, 3)) * CENT_UNITS
            ask = bid + int(rng.integers(1, 4)) * CENT_UNITS
            bid_qty, ask_qty = (int(q) * QUANTITY_STEP_UNITS for q in rng.integers(1, 3_000, 2))
            receive_ns = START_NS + second * 10**9 + offset_ms * 10**6 + 1_000
            events.append((receive_ns, "book", 0, bid, bid_qty, False, ask, ask_qty))
    return sorted(events)


def units(value: int, factor: Fraction) -> int:
    scaled = value * factor
    assert scaled.denominator == 1, f"{value} × {factor} is not a whole 1e-8 unit"
    return int(scaled)


def records(events: list[Event], k: Fraction) -> list[Record]:
    """The events as exchange records, every price ×k and every quantity ÷k."""
    out: list[Record] = []
    for receive_ns, kind, trade_id, price, quantity, buyer_maker, ask, ask_qty in events:
        p, q = format_e8(units(price, k)), format_e8(units(quantity, 1 / k))
        if kind == "trade":
            trade_ns = receive_ns - 2_000_000
            out.append(Trade(SYMBOL, trade_id, p, q, buyer_maker, trade_ns, trade_ns, receive_ns))
        else:
            ask_p, ask_q = format_e8(units(ask, k)), format_e8(units(ask_qty, 1 / k))
            out.append(BookTicker(SYMBOL, receive_ns, p, q, ask_p, ask_q, receive_ns))
    return out


def batch_frame(recorded: list[Record], config: FeatureConfig) -> pl.DataFrame:
    trades = [r for r in recorded if isinstance(r, Trade)]
    tickers = [r for r in recorded if isinstance(r, BookTicker)]
    bars = bars_from_trades(trades_frame(SYMBOL, trades))
    return compute_features(bars, config, ALL_GROUPS, book=book_frame(SYMBOL, tickers), bar_s=1)


def batch_rows(recorded: list[Record], config: FeatureConfig) -> list[dict[str, float | None]]:
    return batch_frame(recorded, config).drop("instrument").to_dicts()


def live_rows(recorded: list[Record], config: FeatureConfig) -> list[dict[str, float | None]]:
    live = LiveFeatures(SYMBOL, config, ALL_GROUPS)
    rows = []
    for record in recorded:
        rows += live.on_trade(record) if isinstance(record, Trade) else live.on_book_ticker(record)
    rows += live.flush()
    return [{"event_timestamp": r.event_timestamp_us, **r.values} for r in rows]


def unchanged(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)


def changed_features(
    base: list[dict[str, float | None]], scaled: list[dict[str, float | None]], names: list[str]
) -> set[str]:
    """The features that differ somewhere between the two runs (same rows, same times)."""
    assert [r["event_timestamp"] for r in base] == [r["event_timestamp"] for r in scaled]
    pairs = list(zip(base, scaled, strict=True))
    return {n for n in names if not all(unchanged(b[n], s[n]) for b, s in pairs)}


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return market_events()


@pytest.mark.parametrize("config", [DEFAULT_CONFIG, SHORT_WINDOWS], ids=["default", "short"])
@pytest.mark.parametrize("k", SCALES, ids=str)
def test_batch_model_inputs_ignore_the_price_level_and_volume_unit_only_levels_move(
    events, config, k
):
    # Arrange
    names = feature_names(config, ALL_GROUPS)

    # Act
    base = batch_rows(records(events, Fraction(1)), config)
    scaled = batch_rows(records(events, k), config)

    # Assert: every feature was compared on warmed-up rows, and only the levels changed
    assert len(base) == SECONDS
    assert all(sum(row[n] is not None for row in base) >= 150 for n in names)
    changed = changed_features(base, scaled, names)
    assert not changed & set(model_feature_names(config, ALL_GROUPS))
    assert changed == set(level_feature_names(config, ALL_GROUPS)), "unmarked or idle levels"


@pytest.mark.parametrize("k", SCALES, ids=str)
def test_live_model_inputs_ignore_the_price_level_and_volume_unit_only_levels_move(events, k):
    # Arrange: the live path, message by message, over the first 400 s
    names = feature_names(SHORT_WINDOWS, ALL_GROUPS)
    head = [e for e in events if e[0] < START_NS + 400 * 10**9]

    # Act
    base = live_rows(records(head, Fraction(1)), SHORT_WINDOWS)
    scaled = live_rows(records(head, k), SHORT_WINDOWS)

    # Assert
    assert len(base) >= 398 and all(sum(r[n] is not None for r in base) >= 150 for n in names)
    changed = changed_features(base, scaled, names)
    assert not changed & set(model_feature_names(SHORT_WINDOWS, ALL_GROUPS))
    assert changed == set(level_feature_names(SHORT_WINDOWS, ALL_GROUPS)), "unmarked or idle levels"


def test_a_level_moves_by_the_scale_factor_itself(events):
    # Arrange: what makes a level a level, shown on vwap: it is a price
    k = Fraction(37)

    # Act
    base = batch_frame(records(events, Fraction(1)), SHORT_WINDOWS)
    scaled = batch_frame(records(events, k), SHORT_WINDOWS)

    # Assert
    ratio = (scaled["vwap_30s"] / base["vwap_30s"]).drop_nulls()
    assert ratio.len() > 1_000
    assert ratio.to_numpy() == pytest.approx(float(k), rel=1e-12)
