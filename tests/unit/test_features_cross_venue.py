"""Cross-venue features: batch and live agree to the last bit; the lead-lag is what was planted.

Batch path: each instrument's trades → silver-like frame → ``bars_from_trades`` →
``compute_cross_features`` (+ the perpetual's funding rates). Live path: the records of both
instruments merged in receive order, one by one, through ``LiveCrossFeatures``.
"""

from __future__ import annotations

import bisect
import json
import math
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from streaming.recordings import read_recording
from streaming.records import BookTicker, FundingRate, Trade
from streaming.simulator.binance.bulk_format import format_e8
from streaming.venues.binance import parse_stream_frame
from streaming.venues.binance_futures import BinanceFuturesFrameParser
from tests.permutation import circular_shift_test
from trading_assets.lib.features import FeatureConfig, FeatureRow, compute_labels, trades_frame
from trading_assets.lib.features.cross_venue import (
    CrossPair,
    compute_cross_features,
    cross_feature_names,
    funding_frame,
)
from trading_assets.lib.features.cross_venue_live import LiveCrossFeatures
from trading_assets.lib.features.definitions import check_model_features, is_level_feature
from trading_assets.lib.features.live import decimal_units
from trading_assets.lib.lakehouse.bars import bars_from_trades

pytestmark = pytest.mark.venues

Record = Trade | BookTicker | FundingRate
CONFIG = FeatureConfig(windows_s=(2, 10, 60), label_horizon_s=2)
SECOND_NS = 10**9
SPOT, PERP = "BINANCE:BTCUSDT", "BINANCE_FUTURES:BTCUSDT"


# --- the two paths -----------------------------------------------------------------------------


def batch_cross(records: Sequence[Record], pair: CrossPair, config: FeatureConfig) -> pl.DataFrame:
    def bars(instrument: str) -> pl.DataFrame:
        trades = [r for r in records if isinstance(r, Trade) and r.instrument == instrument]
        return bars_from_trades(trades_frame(instrument, trades))

    rates = [r for r in records if isinstance(r, FundingRate)]
    funding = funding_frame(rates, pair.funding)
    return compute_cross_features(bars(pair.own), bars(pair.reference), funding, config, bar_s=1)


def live_cross(
    records: Sequence[Record], pair: CrossPair, config: FeatureConfig
) -> list[FeatureRow]:
    live = LiveCrossFeatures(pair, config)
    rows: list[FeatureRow] = []
    for record in records:
        if isinstance(record, Trade):
            rows += live.on_trade(record)
        elif isinstance(record, FundingRate):
            rows += live.on_funding_rate(record)
        else:
            rows += live.on_book_ticker(record)
    return rows + live.flush()


def mismatches(batch: pl.DataFrame, live: list[FeatureRow], names: list[str]) -> list[tuple]:
    """(feature, timestamp µs, batch value, live value) wherever they are not the same float."""
    stamps = batch["event_timestamp"].dt.epoch("us").to_list()
    assert [row.event_timestamp_us for row in live] == stamps
    assert {row.symbol for row in live} == set(batch["instrument"].unique())
    return [
        (name, stamp, b, row.values[name])
        for name in names
        for stamp, b, row in zip(stamps, batch[name].to_list(), live, strict=True)
        if b != row.values[name]
    ]


def in_receive_order(*streams: Sequence[Record]) -> list[Record]:
    """The streams merged by receive time (stable: earlier streams first at a tie)."""
    keyed = [(r.receive_ns, k, i, r) for k, s in enumerate(streams) for i, r in enumerate(s)]
    return [record for *_, record in sorted(keyed, key=lambda item: item[:3])]


# --- (a) the real BTCUSDT tape as the reference, and a delayed copy as the own instrument -------


def recorded_btcusdt(root: Path) -> list[Trade | BookTicker]:
    records: list[Trade | BookTicker] = []
    for day in ("20240808", "20240809"):
        for frame in read_recording(root / "binance" / "ws" / f"btcusdt_{day}.txt.gz"):
            if not frame.is_rest:
                record = parse_stream_frame(frame.payload, frame.receive_ns)
                if isinstance(record, Trade | BookTicker):
                    records.append(record)
    return records


def delayed_copy(
    records: Sequence[Trade | BookTicker], delay_ns: int, factor: Fraction
) -> list[Trade | BookTicker]:
    """The tape as another venue's: every time later by ``delay_ns``, every price × ``factor``."""

    def price(text: str) -> str:
        scaled = decimal_units(text) * factor
        assert scaled.denominator == 1
        return format_e8(int(scaled))

    out: list[Trade | BookTicker] = []
    for r in records:
        if isinstance(r, Trade):
            out.append(Trade(
                "BTC-USD", r.trade_id, price(r.price), r.quantity, r.is_buyer_maker,
                r.trade_ns + delay_ns, r.trade_ns + delay_ns, r.receive_ns + delay_ns, "COINBASE",
            ))  # fmt: skip
        else:
            out.append(BookTicker(
                "BTC-USD", r.update_id, price(r.bid_price), r.bid_qty, price(r.ask_price),
                r.ask_qty, r.receive_ns + delay_ns, None, "COINBASE",
            ))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def btcusdt(shared_data: Path) -> list[Trade | BookTicker]:
    return recorded_btcusdt(shared_data)


@pytest.fixture(scope="module", params=[2, 0], ids=["delayed_2s", "not_delayed"])
def lead_lag(request, btcusdt) -> tuple[int, pl.DataFrame, list[FeatureRow], pl.DataFrame]:
    """Cross features of the delayed copy (own) against the recording (reference), both paths,
    and the own instrument's forward 2 s log return at every own bar."""
    delay_s = request.param
    own = delayed_copy(btcusdt, delay_s * SECOND_NS, Fraction(3, 2))
    pair = CrossPair("COINBASE:BTC-USD", SPOT)
    records = in_receive_order(btcusdt, own)
    own_trades = [r for r in own if isinstance(r, Trade)]
    own_bars = bars_from_trades(trades_frame("COINBASE:BTC-USD", own_trades))
    forward = compute_labels(own_bars, CONFIG, bar_s=1)
    return delay_s, batch_cross(records, pair, CONFIG), live_cross(records, pair, CONFIG), forward


def test_recorded_tape_against_a_delayed_copy_gives_the_same_features_live_and_batch(lead_lag):
    # Arrange
    delay_s, batch, live, _ = lead_lag
    names = cross_feature_names(CONFIG)

    # Act
    found = mismatches(batch, live, names)

    # Assert: 23:54:14 .. 00:05:04 (+ the delay), every second; every feature compared
    assert batch.height == 651
    assert found == []
    assert batch["funding_rate"].null_count() == batch.height  # two spot markets: no perpetual
    windowed = [n for n in names if n not in ("basis_bps", "funding_rate")]
    assert all(batch[n].drop_nulls().len() >= 651 - 61 for n in ["basis_bps", *windowed])
    # The prices are × 3/2: the basis is 1e4 · log(3/2), plus what the tape did in the delay.
    drift = (batch["basis_bps"] - 1e4 * math.log(1.5)).abs().max()
    assert drift > 0.1 if delay_s else drift < 1e-9


def test_the_reference_return_leads_the_delayed_copy_and_only_it(lead_lag):
    # Arrange: lead_ret of the reference over w against the own forward return over 2 s
    delay_s, batch, _, forward = lead_lag
    joined = batch.join(forward, on=["instrument", "event_timestamp"], how="inner")

    # Act
    tests = {}
    for w in CONFIG.windows_s:
        pairs = joined.select(f"lead_ret_{w}s", "fwd_log_return_2s").drop_nulls().to_numpy()
        tests[w] = circular_shift_test(pairs[:, 0], pairs[:, 1], min_lag=w + 2)

    # Assert
    if delay_s:  # the planted lead: clearly positive, significant at 1 %, at every window
        for w, (r, p) in tests.items():
            assert r > 0 and p <= 0.01, (w, r, p)
        assert tests[2][0] > 0.99  # over 2 s, the lead is the copy's next move itself
    else:
        # Without the delay nothing leads: not significant at 5 %. The 2 s window is left out:
        # the recording itself shows 1-2 s momentum (r ≈ 0.12, p ≈ 0.01), a fact of the tape.
        for w in (10, 60):
            r, p = tests[w]
            assert p > 0.05, (w, r, p)


# --- (b) a perpetual with funding rates ---------------------------------------------------------


def futures_frames(
    spot: Sequence[Trade], lead_ns: int, premium: Fraction
) -> list[tuple[int, bytes]]:
    """(receive ns, frame): the spot trades as Binance USD-M trade frames of a perpetual that
    trades ``lead_ns`` earlier at a premium, and a markPrice@1s frame per second from 30 s in
    with a funding rate that changes every frame (some received exactly at a second's end, some
    1 µs after it), and an ETHUSDT perpetual's frames whose rates must be ignored."""
    frames: list[tuple[int, bytes]] = []
    for t in spot:
        price = decimal_units(t.price) * premium
        assert price.denominator == 1
        ms = (t.trade_ns - lead_ns) // 1_000_000
        data = {"e": "trade", "E": ms, "T": ms, "s": "BTCUSDT", "t": t.trade_id,
                "p": format_e8(int(price)), "q": t.quantity, "X": "MARKET",
                "m": t.is_buyer_maker}  # fmt: skip
        frames.append((t.receive_ns - lead_ns, _frame("btcusdt@trade", data)))
    first_s = spot[0].trade_ns // SECOND_NS + 30
    for k in range((spot[-1].trade_ns // SECOND_NS) - first_s):
        second_ns = (first_s + k) * SECOND_NS
        receive_ns = second_ns + (0, 1_000, 250_000_000)[k % 3]
        rate = ((k * 7919) % 41 - 20) * 1_000  # ±0.0002 in 1e-8 units, either sign
        for symbol, scale in (("BTCUSDT", 1), ("ETHUSDT", 50)):
            data = {"e": "markPriceUpdate", "E": second_ns // 1_000_000, "s": symbol,
                    "p": "61000.00000000", "i": "60990.00000000", "P": "61000.00000000",
                    "r": ("-" if rate < 0 else "") + format_e8(abs(rate) * scale),
                    "T": (second_ns // SECOND_NS // 28_800 + 1) * 28_800_000}  # fmt: skip
            frames.append((receive_ns, _frame(f"{symbol.lower()}@markPrice@1s", data)))
    return frames


def _frame(stream: str, data: dict) -> bytes:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def with_perpetual(btcusdt) -> list[Record]:
    """The recording (spot) and a perpetual leading it by 1 s at a 2 bps premium, parsed by the
    futures venue's parser, in receive order."""
    spot_trades = [r for r in btcusdt if isinstance(r, Trade)]
    parser = BinanceFuturesFrameParser()
    perpetual: list[Record] = []
    for receive_ns, raw in sorted(futures_frames(spot_trades, SECOND_NS, Fraction(10_002, 10_000))):
        record = parser.parse(raw, receive_ns)
        assert isinstance(record, Trade | FundingRate)
        perpetual.append(record)
    return in_receive_order(btcusdt, perpetual)


@pytest.mark.parametrize("own_is_perpetual", [False, True], ids=["spot_own", "perpetual_own"])
def test_a_perpetual_gives_the_same_features_live_and_batch_and_its_funding_rate(
    with_perpetual, own_is_perpetual
):
    # Arrange
    if own_is_perpetual:
        pair = CrossPair(PERP, SPOT, "perpetual", "spot")
    else:
        pair = CrossPair(SPOT, PERP, "spot", "perpetual")
    names = cross_feature_names(CONFIG)
    rates = [r for r in with_perpetual if isinstance(r, FundingRate) and r.instrument == PERP]

    # Act
    batch = batch_cross(with_perpetual, pair, CONFIG)
    live = live_cross(with_perpetual, pair, CONFIG)

    # Assert: the same floats; funding is the last BTCUSDT rate received by each bar's end
    assert pair.funding == PERP and len(rates) > 500
    assert mismatches(batch, live, names) == []
    received_us = [r.receive_ns // 1000 for r in rates]
    expected = []
    for stamp in batch["event_timestamp"].dt.epoch("us").to_list():
        k = bisect.bisect_right(received_us, stamp)
        expected.append(float(rates[k - 1].funding_rate) if k else None)
    assert batch["funding_rate"].to_list() == expected
    assert 0 < batch["funding_rate"].null_count() < 35  # none before the first rate
    assert batch["funding_rate"].drop_nulls().n_unique() == 41
    # The perpetual is priced 2 bps over the spot market: the basis says so, either way round.
    sign = 1.0 if own_is_perpetual else -1.0
    premium_bps = sign * 1e4 * math.log(1.0002)
    median = batch["basis_bps_60s"].median()
    assert isinstance(median, float) and abs(median - premium_bps) < 0.5


# --- the definition on small hand-made tapes ----------------------------------------------------

T0_NS = 1_709_294_400 * SECOND_NS  # 2024-03-01 12:00:00 UTC
SMALL = FeatureConfig(windows_s=(2,), label_horizon_s=2)
OWN, REF = "COINBASE:BTC-USD", "BINANCE:BTCUSDT"


def trade(instrument: str, trade_id: int, at_s: float, price: str, qty: str = "1.00000000",
          buyer_maker: bool = False, received_after_s: float = 0.001) -> Trade:  # fmt: skip
    venue, _, symbol = instrument.partition(":")
    at_ns = T0_NS + round(at_s * 1e9)
    receive_ns = at_ns + round(received_after_s * 1e9)
    return Trade(symbol, trade_id, price, qty, buyer_maker, at_ns, at_ns, receive_ns, venue)


def test_a_quiet_reference_carries_its_close_and_windows_warm_up():
    # Arrange: the reference trades in seconds 0 and 1 only; the own instrument in 0..4
    tape = [
        trade(REF, 1, 0.1, "100.00000000", "2.00000000"),
        trade(OWN, 1, 0.2, "101.00000000"),
        trade(REF, 2, 1.1, "102.00000000", buyer_maker=True),
        trade(OWN, 2, 1.2, "103.00000000"),
        trade(OWN, 3, 3.5, "104.00000000", "3.00000000", buyer_maker=True),
        trade(OWN, 4, 4.5, "105.00000000"),
    ]
    pair = CrossPair(OWN, REF)
    records = in_receive_order(tape)

    # Act
    batch = batch_cross(records, pair, SMALL)
    live = live_cross(records, pair, SMALL)

    # Assert
    assert mismatches(batch, live, cross_feature_names(SMALL)) == []
    rows = batch.to_dicts()
    assert len(rows) == 5
    basis = [1e4 * math.log(own / ref) for own, ref in ((101, 100), (103, 102), (103, 102),
                                                        (104, 102), (105, 102))]  # fmt: skip
    assert [r["basis_bps"] for r in rows] == pytest.approx(basis, rel=1e-12)
    assert [r["lead_ret_2s"] for r in rows[:2]] == [None, None]  # warm-up
    assert rows[2]["lead_ret_2s"] == pytest.approx(math.log(102 / 100))
    assert rows[3]["lead_ret_2s"] == 0.0  # the reference was quiet: its close carried
    assert rows[3]["lead_gap_2s"] == pytest.approx(-math.log(104 / 103))
    assert rows[2]["xflow_imb_2s"] == pytest.approx((1 - 1) / 2)  # seconds 1, 2
    assert rows[3]["xflow_imb_2s"] == pytest.approx(-1.0)  # second 3: one taker sell of 3
    assert rows[2]["basis_bps_2s"] == pytest.approx((basis[1] + basis[2]) / 2)
    assert all(r["funding_rate"] is None for r in rows)


def test_windows_without_volume_or_without_a_reference_close_are_null():
    # Arrange: the reference starts 2 s after the own instrument; nothing trades in 3..4
    tape = [
        trade(OWN, 1, 0.5, "100.00000000"),
        trade(OWN, 2, 1.5, "100.50000000"),
        trade(REF, 1, 2.5, "99.00000000"),
        trade(OWN, 3, 2.6, "101.00000000"),
        trade(OWN, 4, 5.5, "101.00000000"),
    ]
    pair = CrossPair(OWN, REF)
    records = in_receive_order(tape)

    # Act
    batch = batch_cross(records, pair, SMALL).to_dicts()
    live = live_cross(records, pair, SMALL)

    # Assert
    assert mismatches(pl.DataFrame(batch), live, cross_feature_names(SMALL)) == []
    assert [r["basis_bps"] is None for r in batch] == [True, True, False, False, False, False]
    assert batch[2]["lead_ret_2s"] is None and batch[3]["lead_ret_2s"] is None  # none at t − w
    assert batch[4]["lead_ret_2s"] == 0.0 == batch[5]["lead_ret_2s"]
    assert batch[2]["basis_bps_2s"] is None and batch[3]["basis_bps_2s"] is not None
    assert batch[4]["xflow_imb_2s"] is None  # seconds 3 and 4: no trade on either venue


def test_live_waits_for_a_lagging_reference_and_the_clock_releases_it():
    # Arrange: the reference's trades reach us late; then it falls silent
    live = LiveCrossFeatures(CrossPair(OWN, REF), SMALL)
    own_1 = live.on_trade(trade(OWN, 1, 0.5, "100.00000000"))
    own_2 = live.on_trade(trade(OWN, 2, 1.5, "100.00000000"))  # own second 0 is complete

    # Act
    ref_1 = live.on_trade(trade(REF, 1, 0.7, "99.00000000", received_after_s=1.0))
    ref_2 = live.on_trade(trade(REF, 2, 1.8, "99.50000000", received_after_s=0.5))
    by_clock = live.advance_to((T0_NS + 4 * SECOND_NS) // 1000)
    late = live.on_trade(trade(REF, 3, 3.9, "98.00000000", received_after_s=0.5))

    # Assert
    assert own_1 == own_2 == ref_1 == []  # the reference's second 0 was not complete
    assert [row.event_timestamp_us for row in ref_2] == [(T0_NS + SECOND_NS) // 1000]
    assert ref_2[0].values["basis_bps"] == pytest.approx(1e4 * math.log(100 / 99))
    stamps = [(row.event_timestamp_us * 1000 - T0_NS) // SECOND_NS for row in by_clock]
    assert stamps == [2, 3, 4]
    assert by_clock[-1].values["basis_bps"] == pytest.approx(1e4 * math.log(100 / 99.5))
    assert late == [] and live.late_trades == 1


def test_funding_counts_from_its_receive_time_and_only_the_pairs_perpetual():
    # Arrange
    pair = CrossPair(OWN, PERP, "spot", "perpetual")
    live = LiveCrossFeatures(pair, SMALL)

    def rate(symbol: str, value: str, received_s: float) -> FundingRate:
        at_ns = T0_NS + round(received_s * 1e9)
        return FundingRate(symbol, "100", None, value, None, at_ns, at_ns, "BINANCE_FUTURES")

    # The local clock runs behind the venues': second 1's trades arrive before it begins.
    live.on_trade(trade(OWN, 1, 0.2, "100.00000000"))
    live.on_trade(trade(PERP, 1, 0.3, "100.00000000"))
    live.on_trade(trade(OWN, 2, 1.1, "100.00000000", received_after_s=-0.2))
    trades_in = live.on_trade(trade(PERP, 2, 1.2, "100.00000000", received_after_s=-0.25))
    at_the_end = live.on_funding_rate(rate("BTCUSDT", "0.00010000", 1.0))  # at second 0's end
    other = live.on_funding_rate(rate("ETHUSDT", "0.00500000", 1.0))  # another perpetual's

    # Act: a message received after the end releases the row
    after = live.on_funding_rate(rate("BTCUSDT", "-0.00020000", 1.000001))

    # Assert
    assert trades_in == at_the_end == other == []  # a rate received at 1.0 s may be on its way
    assert [row.values["funding_rate"] for row in after] == [0.0001]
    assert live.flush()[-1].values["funding_rate"] == -0.0002


def test_every_cross_feature_is_a_model_input_and_a_pair_names_its_perpetual():
    names = cross_feature_names(CONFIG)

    check_model_features(names)  # raises for a level

    assert not any(is_level_feature(n) for n in names) and len(names) == 2 + 4 * 3
    assert CrossPair(SPOT, "COINBASE:BTC-USD").funding is None
    assert CrossPair(PERP, SPOT, "perpetual", "perpetual").funding == PERP
    with pytest.raises(ValueError, match="its own reference"):
        CrossPair(SPOT, SPOT)


# --- scale-free: prices of both × k, quantities ÷ k ---------------------------------------------

SECONDS = 600
CENT_UNITS = 1_000_000  # 0.01 in 1e-8 units
QUANTITY_STEP_UNITS = 3_700  # quantity ÷ 10 and ÷ 37 stay whole; cents × it are whole units
SCALES = (Fraction(10), Fraction(1, 1000), Fraction(37))
SCALE_CONFIG = FeatureConfig(windows_s=(1, 7, 30, 240))
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 4 * sys.float_info.epsilon
# (receive ns, instrument, id, price units, quantity units, is buyer maker; funding: id = rate)
Event = tuple[int, str, int, int, int, bool]


def pair_events(seed: int = 3) -> list[Event]:
    """A random walk traded on the perpetual and, 1 s later and a few cents off, on the spot
    market (0-3 trades a second each, quiet seconds included), and a funding rate every 3 s."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    path = [2_000 * 100 * CENT_UNITS]
    for second in range(SECONDS):
        path.append(path[-1] + int(rng.integers(-4, 5)) * CENT_UNITS)
        for instrument, lag in ((PERP, 0), (OWN, 1)):
            for offset_ms in np.sort(rng.integers(0, 1_000, rng.integers(0, 4))):
                price = path[max(second + 1 - lag, 0)] + int(rng.integers(-2, 3)) * CENT_UNITS
                quantity = int(rng.integers(1, 2_000)) * QUANTITY_STEP_UNITS
                receive_ns = T0_NS + second * SECOND_NS + int(offset_ms) * 10**6 + 5_000_000
                events.append((receive_ns, instrument, len(events), price, quantity,
                               bool(rng.random() < 0.5)))  # fmt: skip
        if second % 3 == 2:
            rate = int(rng.integers(-30_000, 30_000))
            events.append((T0_NS + second * SECOND_NS + 500_000_000, "funding", rate, 0, 0, False))
    return sorted(events)


def scaled_records(events: list[Event], k: Fraction) -> list[Record]:
    """The events as records, every price of both instruments × k, every quantity ÷ k."""

    def units(value: int, factor: Fraction) -> str:
        scaled = value * factor
        assert scaled.denominator == 1, f"{value} × {factor} is not a whole 1e-8 unit"
        return format_e8(int(scaled))

    out: list[Record] = []
    for receive_ns, instrument, ident, price, quantity, buyer_maker in events:
        if instrument == "funding":
            text = ("-" if ident < 0 else "") + format_e8(abs(ident))
            out.append(FundingRate("BTCUSDT", units(price, k), None, text, None, receive_ns,
                                   receive_ns, "BINANCE_FUTURES"))  # fmt: skip
            continue
        venue, _, symbol = instrument.partition(":")
        trade_ns = receive_ns - 5_000_000
        out.append(Trade(symbol, ident, units(price, k), units(quantity, 1 / k), buyer_maker,
                         trade_ns, trade_ns, receive_ns, venue,
                         "perpetual" if instrument == PERP else "spot"))  # fmt: skip
    return out


def unchanged(name: str, a: float | None, b: float | None) -> bool:
    """Equal up to the rounding of scaled prices: a log of a quotient of prices moves by an ulp
    or two (measured: at most 2 machine epsilons; see test_features_scale_free), so the basis, a
    log ratio × 1e4, moves by 1e4 times as much and lead_gap, a difference of two, by twice."""
    if a is None or b is None:
        return a is None and b is None
    logs = 1e4 if name.startswith("basis_bps") else 2.0 if name.startswith("lead_gap") else 1.0
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE * logs)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return pair_events()


@pytest.mark.parametrize("k", SCALES, ids=str)
def test_cross_features_ignore_the_price_level_and_volume_unit_of_both(events, k):
    # Arrange
    pair = CrossPair(OWN, PERP, "spot", "perpetual")
    names = cross_feature_names(SCALE_CONFIG)
    base_records, scaled = scaled_records(events, Fraction(1)), scaled_records(events, k)

    # Act
    base_batch = batch_cross(base_records, pair, SCALE_CONFIG)
    scaled_batch = batch_cross(scaled, pair, SCALE_CONFIG)
    base_live = live_cross(base_records, pair, SCALE_CONFIG)
    scaled_live = live_cross(scaled, pair, SCALE_CONFIG)

    # Assert: the paths agree on each run; every feature was compared and none moved
    assert mismatches(base_batch, base_live, names) == []
    assert mismatches(scaled_batch, scaled_live, names) == []
    assert base_batch.height >= SECONDS - 2
    assert all(base_batch[n].drop_nulls().len() >= 150 for n in names)
    base, moved = base_batch.to_dicts(), scaled_batch.to_dicts()
    changed = {n for n in names if not all(
        unchanged(n, b[n], s[n]) for b, s in zip(base, moved, strict=True))}  # fmt: skip
    assert changed == set()


def test_batch_refuses_bars_it_cannot_pair():
    # Arrange
    own = bars_from_trades(trades_frame(OWN, [trade(OWN, 1, 0.2, "100.00000000")]))
    ref = bars_from_trades(trades_frame(REF, [trade(REF, 1, 0.4, "100.00000000")]))
    two_instruments = pl.concat([own, ref])
    klines = ref.with_columns(buy_volume=pl.lit(None, pl.Float64))
    off_grid = ref.with_columns(pl.col("bar_start") + pl.duration(milliseconds=500))

    # Act, Assert
    with pytest.raises(ValueError, match="one symbol"):
        compute_cross_features(two_instruments, ref, bar_s=1)
    with pytest.raises(ValueError, match="taker buy/sell volumes"):
        compute_cross_features(own, klines, bar_s=1)
    with pytest.raises(ValueError, match="not all on the 1s grid"):
        compute_cross_features(own, off_grid, bar_s=1)
