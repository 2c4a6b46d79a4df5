"""Live driver behaviour the replays do not reach: the clock closing quiet seconds, late trades."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from streaming.records import BookTicker, Trade
from trading_assets.lib.features import ALL_GROUPS, BarBuilder, FeatureConfig, LiveFeatures
from trading_assets.lib.features.live import FOLD_EVERY, bar_of, decimal_units, units_of

T0_NS = 1_709_294_400 * 10**9  # 2024-03-01 12:00:00 UTC
CONFIG = FeatureConfig(windows_s=(2,), label_horizon_s=2)


def trade(trade_id: int, at_s: float, price: str, qty: str, buyer_maker: bool = False) -> Trade:
    at_ns = T0_NS + round(at_s * 1e9)
    return Trade("BTCUSDT", trade_id, price, qty, buyer_maker, at_ns, at_ns, at_ns + 1_000_000)


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("61234.12000000", 6_123_412_000_000),  # Binance's eight fractional digits
        ("0.00000001", 1),
        ("100.1", 10_010_000_000),
        ("7", 700_000_000),
        ("2.123456780", 212_345_678),  # a ninth digit that is zero
    ],
)
def test_decimal_units_are_exact_1e8_units(text, units):
    assert decimal_units(text) == units


def test_decimal_units_refuse_a_ninth_significant_digit():
    with pytest.raises(ValueError, match="more than 8 fractional digits"):
        decimal_units("2.123456781")


def test_bar_builder_sums_decimals_exactly_and_splits_taker_sides():
    # Arrange
    builder = BarBuilder("BTCUSDT")
    fills = [(1, "100.10", "0.1", False), (2, "100.30", "0.2", True), (3, "100.20", "0.3", False)]

    # Act
    for trade_id, price, qty, maker in fills:
        assert builder.add(trade(trade_id, trade_id / 1e6, price, qty, maker)) is None
    bar = builder.close()

    # Assert
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close) == (100.10, 100.30, 100.10, 100.20)
    assert bar.volume == 0.6  # 0.1 + 0.2 + 0.3 in floats would be 0.6000000000000001
    assert bar.notional == 60.13  # 10.01 + 20.06 + 30.06, exactly
    assert (bar.buy_volume, bar.sell_volume, bar.trade_count) == (0.4, 0.2, 3)
    assert (bar.first_trade_id, bar.last_trade_id) == (1, 3)


def test_units_of_takes_binance_decimals_in_one_pass_and_any_other_one_by_one():
    binance = ["61234.12000000", "0.00000001", "7.50000000"]
    mixed = [*binance, "100.1", "2.123456780"]

    assert units_of(binance) == [decimal_units(text) for text in binance]
    assert units_of(mixed) == [decimal_units(text) for text in mixed]
    with pytest.raises(ValueError, match="more than 8 fractional digits"):
        units_of([*binance, "2.123456781"])


def test_a_bar_of_binance_decimals_rounds_each_exact_value_once():
    # Arrange: prices and quantities as Binance sends them; Fraction is the exact reference
    rnd = random.Random(7)
    count = 2 * FOLD_EVERY + 5  # the builder sums them in three parts
    fills = [
        (f"{rnd.randint(1, 99_999)}.{rnd.randint(0, 10**8 - 1):08d}",
         f"{rnd.randint(0, 40)}.{rnd.randint(1, 10**8 - 1):08d}", rnd.random() < 0.5)
        for _ in range(count)
    ]  # fmt: skip
    trades = [trade(i + 1, i / 1e4, p, q, maker) for i, (p, q, maker) in enumerate(fills)]

    # Act
    bar = bar_of("BTCUSDT", T0_NS // 1000, trades)
    builder = BarBuilder("BTCUSDT")
    for t in trades:
        builder.add(t)
    built = builder.close()

    # Assert
    prices = [Fraction(p) for p, _, _ in fills]
    volume = sum(Fraction(q) for _, q, _ in fills)
    buy = sum(Fraction(q) for _, q, maker in fills if not maker)
    notional = sum(Fraction(p) * Fraction(q) for p, q, _ in fills)
    assert (bar.open, bar.close) == (float(fills[0][0]), float(fills[-1][0]))
    assert (bar.high, bar.low) == (float(max(prices)), float(min(prices)))
    assert (bar.volume, bar.buy_volume) == (float(volume), float(buy))
    assert (bar.notional, bar.sell_volume) == (float(notional), float(volume - buy))
    assert (bar.trade_count, bar.first_trade_id, bar.last_trade_id) == (count, 1, count)
    assert built == bar


def test_a_trade_whose_decimals_cannot_be_summed_is_left_out_of_its_bar_and_counted(caplog):
    builder = BarBuilder("BTCUSDT")
    builder.add(trade(1, 0.1, "100.123456781", "1"))  # a ninth significant digit
    builder.add(trade(2, 0.2, "101.00000000", "2.00000000"))

    bar = builder.close()

    assert bar is not None and (bar.open, bar.volume, bar.trade_count) == (101.0, 2.0, 1)
    assert bar.first_trade_id == 2 and builder.unsummable_trades == 1
    assert "1 trades left out of their bar" in caplog.text


def test_a_busy_bar_leaves_out_only_the_trades_that_cannot_be_summed():
    live = LiveFeatures("BTCUSDT", CONFIG)
    count = FOLD_EVERY + 6  # summed in two parts
    for trade_id in range(1, count + 1):
        price = "100.123456781" if trade_id == 2 else f"{100 + trade_id}.00000000"
        assert live.on_trade(trade(trade_id, trade_id / 1e3, price, "1.00000000")) == []

    bar = live.bars.close()

    assert bar is not None and live.bars.unsummable_trades == 1
    assert (bar.trade_count, bar.volume, bar.first_trade_id, bar.last_trade_id) == (
        count - 1, count - 1, 1, count
    )  # fmt: skip
    assert (bar.open, bar.low, bar.high) == (101.0, 101.0, 100.0 + count)


def test_the_clock_closes_quiet_seconds_and_a_trade_for_a_closed_second_is_dropped():
    # Arrange
    live = LiveFeatures("BTCUSDT", CONFIG)
    live.on_trade(trade(1, 0.2, "100.00", "1"))
    by_trade = live.on_trade(trade(2, 1.5, "101.00", "1", buyer_maker=True))

    # Act
    by_clock = live.advance_to(T0_NS // 1000 + 5_000_000)  # now 12:00:05, no trade since 12:00:01
    late = live.on_trade(trade(3, 4.9, "99.00", "1"))
    after = live.on_trade(trade(4, 6.1, "102.00", "2"))

    # Assert
    stamps = [row.event_timestamp_us - T0_NS // 1000 for row in by_trade + by_clock]
    assert stamps == [1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]
    at_2s, at_3s, at_5s = by_clock[0].values, by_clock[1].values, by_clock[3].values
    assert at_2s["mom_2s"] is None  # warm-up: no close at 12:00:00 yet
    assert at_3s["mom_2s"] == math.log(101 / 100)
    assert at_3s["flow_imb_2s"] == -1.0  # only the taker sell of 12:00:01 in (1 s, 3 s]
    assert at_5s["mom_2s"] == 0.0 and at_5s["rv_2s"] == 0.0  # quiet: close carried forward
    assert at_5s["vwap_2s"] is None and at_5s["intensity_2s"] == 0.0
    assert late == [] and live.late_trades == 1
    assert [row.event_timestamp_us - T0_NS // 1000 for row in after] == [6_000_000]  # quiet
    assert live.flush()[-1].values["mom_2s"] == math.log(102 / 101)


def test_book_features_wait_until_every_ticker_up_to_the_second_has_arrived():
    # Arrange: the receive clock runs 1.2 s behind the exchange's, as in the recorded sessions
    live = LiveFeatures("BTCUSDT", CONFIG, ("price", "book"))
    behind_ns = 1_200_000_000

    def received_trade(trade_id: int, at_s: float) -> Trade:
        at_ns = T0_NS + round(at_s * 1e9)
        return Trade("BTCUSDT", trade_id, "100.00", "1", False, at_ns, at_ns, at_ns - behind_ns)

    def ticker(received_s: float, bid_qty: str, ask_qty: str) -> BookTicker:
        received_ns = T0_NS + round(received_s * 1e9)
        return BookTicker("BTCUSDT", 1, "99.99", bid_qty, "100.01", ask_qty, received_ns)

    # Act
    on_trades = live.on_trade(received_trade(1, 0.5)) + live.on_trade(received_trade(2, 1.1))
    on_book_before_the_second_ends = live.on_book_ticker(ticker(0.9, "3", "1"))
    on_book_after_it_ended = live.on_book_ticker(ticker(1.05, "1", "3"))

    # Assert
    assert on_trades == [] and on_book_before_the_second_ends == []  # 12:00:01 not yet reached
    assert [row.event_timestamp_us for row in on_book_after_it_ended] == [T0_NS // 1000 + 10**6]
    values = on_book_after_it_ended[0].values
    assert values["book_imb"] == 0.5  # the ticker received at 0.9 s, not the one at 1.05 s
    assert values["spread_bps"] == 20_000 * (100.01 - 99.99) / (100.01 + 99.99)


def test_a_trade_emits_the_interval_a_clock_advance_left_waiting_for_a_later_message():
    live = LiveFeatures("BTCUSDT", CONFIG, ALL_GROUPS)
    second = 10**9
    # A trade of second 1 received 1 ms before that second began by the local clock (which
    # runs behind the exchange's): second 0 has all its trades, and waits for a message
    # received after its end, since a book ticker may still be on its way.
    assert live.on_trade(trade(1, 0.5, "100.0", "1.0")) == []
    late_clock = Trade("BTCUSDT", 2, "101.0", "1.0", False, T0_NS + second + 10**6,
                       T0_NS + second + 10**6, T0_NS + second - 10**6)  # fmt: skip
    assert live.on_trade(late_clock) == []
    # The sidecar's clock closes what it can, up to its newest message less a delay.
    assert live.advance_to((T0_NS + second - 10**6 - second // 4) // 1000) == []

    rows = live.on_trade(trade(3, 1.2, "102.0", "1.0"))  # received after second 0 ended

    assert [row.event_timestamp_us for row in rows] == [(T0_NS + second) // 1000]
