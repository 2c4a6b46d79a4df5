"""Batch features and labels against a plain row-by-row reading of their definitions."""

from __future__ import annotations

import datetime as dt
import math
import random

import polars as pl
import pytest

from trading_assets.lib.features import (
    ALL_GROUPS,
    FeatureConfig,
    compute_features,
    compute_labels,
    feature_names,
    level_feature_names,
    model_feature_names,
)
from trading_assets.lib.features.definitions import check_model_features, feature_kind
from trading_assets.lib.features.klines import kline_groups, kline_model_features

START = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = FeatureConfig(windows_s=(2, 5), label_horizon_s=3)


def random_bars(instrument: str, seconds: int, seed: int) -> list[dict]:
    """Bars at a random subset of seconds (gaps included), the first second always present."""
    rng = random.Random(seed)
    rows, price = [], 100.0
    for s in range(seconds):
        if s > 0 and rng.random() < 0.35:
            continue
        price = round(price * (1 + rng.uniform(-0.002, 0.002)), 2)
        buy, sell = rng.randrange(0, 5000) / 1000, rng.randrange(0, 5000) / 1000
        if buy + sell == 0:
            buy = 0.001
        rows.append(
            {
                "trade_date": START.date(),
                "instrument": instrument,
                "bar_start": START + dt.timedelta(seconds=s),
                "open": price,
                "high": price,
                "low": price,
                "close": price,
                "volume": buy + sell,
                "notional": round((buy + sell) * price * rng.uniform(0.999, 1.001), 6),
                "buy_volume": buy,
                "sell_volume": sell,
                "trade_count": rng.randrange(1, 9),
                "first_trade_id": s,
                "last_trade_id": s,
            }
        )
    for row in rows:
        row["vwap"] = row["notional"] / row["volume"]
    return rows


def random_book(instrument: str, seconds: int, seed: int) -> list[dict]:
    """Tickers at random microseconds, some exactly on a second (the at-or-before edge)."""
    rng = random.Random(seed)
    rows = []
    for s in range(2, seconds):  # no book for the first two seconds: book features start null
        for _ in range(rng.randrange(0, 3)):
            offset = rng.choice([0, rng.randrange(1, 1_000_000)])
            bid = 100 + rng.randrange(0, 50) / 100
            rows.append(
                {
                    "instrument": instrument,
                    "time": START + dt.timedelta(seconds=s, microseconds=offset),
                    "bid_price": bid,
                    "bid_qty": rng.randrange(1, 900) / 100,
                    "ask_price": bid + rng.randrange(1, 5) / 100,
                    "ask_qty": rng.randrange(1, 900) / 100,
                }
            )
    return sorted(rows, key=lambda r: r["time"])


def reference(bars: list[dict], book: list[dict], config: FeatureConfig) -> dict:
    """Features per event_timestamp, straight from the definitions (dense seconds, loops, fsum)."""
    by_second = {int((b["bar_start"] - START).total_seconds()): b for b in bars}
    last = max(by_second)
    dense, close = [], None
    for s in range(last + 1):
        bar = by_second.get(s)
        close = bar["close"] if bar else close
        dense.append((bar, close))
    out = {}
    for i in range(last + 1):
        end = START + dt.timedelta(seconds=i + 1)
        row: dict[str, float | None] = {}
        quotes = [q for q in book if q["time"] <= end]
        imbalances = []
        for j in range(max(0, i - max(config.windows_s)), i + 1):
            at = START + dt.timedelta(seconds=j + 1)
            qs = [q for q in book if q["time"] <= at]
            imbalances.append(
                (qs[-1]["bid_qty"] - qs[-1]["ask_qty"]) / (qs[-1]["bid_qty"] + qs[-1]["ask_qty"])
                if qs
                else None
            )
        if quotes:
            q = quotes[-1]
            mid = (q["bid_price"] + q["ask_price"]) / 2
            micro = (q["bid_price"] * q["ask_qty"] + q["ask_price"] * q["bid_qty"]) / (
                q["bid_qty"] + q["ask_qty"]
            )
            row["book_imb"] = imbalances[-1]
            row["microprice_dev"] = (micro - mid) / mid
            row["spread_bps"] = (q["ask_price"] - q["bid_price"]) / mid * 10_000
        else:
            row["book_imb"] = row["microprice_dev"] = row["spread_bps"] = None
        for w in config.windows_s:
            window = [dense[j] for j in range(i - w + 1, i + 1)] if i >= w else None
            if window is None:
                for kind in ("vwap", "vwap_dev", "rv", "mom", "flow_imb", "intensity", "book_imb"):
                    row[f"{kind}_{w}s"] = None
                continue
            real = [bar for bar, _ in window if bar]
            volume = math.fsum(b["volume"] for b in real)
            vwap = math.fsum(b["notional"] for b in real) / volume if volume else None
            row[f"vwap_{w}s"] = vwap
            row[f"vwap_dev_{w}s"] = math.log(dense[i][1] / vwap) if vwap else None
            returns = [math.log(dense[j][1] / dense[j - 1][1]) for j in range(i - w + 1, i + 1)]
            row[f"rv_{w}s"] = math.sqrt(math.fsum(r * r for r in returns))
            row[f"mom_{w}s"] = math.log(dense[i][1] / dense[i - w][1])
            buy = math.fsum(b["buy_volume"] for b in real)
            sell = math.fsum(b["sell_volume"] for b in real)
            row[f"flow_imb_{w}s"] = (buy - sell) / (buy + sell) if buy + sell else None
            row[f"intensity_{w}s"] = sum(b["trade_count"] for b in real) / w
            samples = imbalances[-w:]
            row[f"book_imb_{w}s"] = None if None in samples else math.fsum(samples) / w
        out[end] = row
    return out


def close_enough(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-15)


def test_feature_names_are_grouped_in_a_stable_order():
    # Arrange
    config = FeatureConfig(windows_s=(10, 60))

    # Act
    trade_only = feature_names(config, ("flow", "price"))
    everything = feature_names(config)

    # Assert
    assert trade_only[:2] == ["vwap_10s", "vwap_60s"]
    assert trade_only[-2:] == ["intensity_10s", "intensity_60s"]
    assert everything[: len(trade_only)] == trade_only
    assert everything[len(trade_only) :] == [
        "book_imb",
        "microprice_dev",
        "spread_bps",
        "book_imb_10s",
        "book_imb_60s",
    ]


def test_every_feature_is_either_a_model_input_or_a_display_only_level():
    # Arrange
    config = FeatureConfig(windows_s=(10, 60))
    everything = feature_names(config)

    # Act
    inputs, levels = model_feature_names(config), level_feature_names(config)

    # Assert
    assert levels == ["vwap_10s", "vwap_60s"]
    assert inputs == [name for name in everything if name not in levels]  # same order
    assert set(inputs) | set(levels) == set(everything) and not set(inputs) & set(levels)
    assert [feature_kind(n) for n in ("vwap_dev_60s", "vwap_10s", "spread_bps")] == [
        "vwap_dev",
        "vwap",
        "spread_bps",
    ]


def test_a_level_feature_is_refused_as_a_model_input_by_name():
    # Arrange
    inputs = model_feature_names(CONFIG)

    # Act / Assert: the inputs pass, any level among them is named in the refusal
    check_model_features(inputs)
    with pytest.raises(ValueError, match=r"\['vwap_5s'\] are level features, display only"):
        check_model_features([*inputs, "vwap_5s"])
    with pytest.raises(ValueError, match="vwap_3600s"):
        check_model_features(["mom_300s", "vwap_3600s"])  # any window, not only configured ones


def test_klines_models_read_their_groups_without_levels():
    # Arrange
    six_columns = ("open_time", "open", "high", "low", "close", "volume")
    full = (*six_columns, "quote_volume", "count", "taker_buy_volume")

    # Act / Assert
    assert kline_groups(six_columns) == ("price",)
    assert kline_groups(full) == ("price", "flow")
    assert kline_model_features(six_columns, CONFIG) == model_feature_names(CONFIG, ("price",))
    assert kline_model_features(full, CONFIG) == model_feature_names(CONFIG, ("price", "flow"))
    assert not set(kline_model_features(full, CONFIG)) & set(level_feature_names(CONFIG))


def test_features_match_the_definitions_at_every_second_gaps_and_warm_up_included():
    # Arrange
    bars = random_bars("BINANCE:AAAUSDT", 40, seed=1)
    book = random_book("BINANCE:AAAUSDT", 40, seed=2)
    expected = reference(bars, book, CONFIG)

    # Act
    features = compute_features(
        pl.DataFrame(bars), CONFIG, ALL_GROUPS, book=pl.DataFrame(book), bar_s=1
    )

    # Assert
    assert features["event_timestamp"].to_list() == list(expected)
    names = feature_names(CONFIG, ALL_GROUPS)
    assert features.columns == ["instrument", "event_timestamp", *names]
    for row in features.iter_rows(named=True):
        want = expected[row["event_timestamp"]]
        wrong = [n for n in names if not close_enough(row[n], want[n])]
        assert not wrong, (row["event_timestamp"], {n: (row[n], want[n]) for n in wrong})
    assert features["mom_5s"].head(5).is_null().all()
    assert features["mom_5s"][5] is not None


def test_instruments_are_computed_independently():
    # Arrange
    first, second = (
        random_bars("BINANCE:AAAUSDT", 30, seed=3),
        random_bars("COINBASE:BBB-USD", 25, seed=4),
    )

    # Act
    together = compute_features(pl.DataFrame(first + second), CONFIG, bar_s=1)
    alone = pl.concat(
        [
            compute_features(pl.DataFrame(first), CONFIG, bar_s=1),
            compute_features(pl.DataFrame(second), CONFIG, bar_s=1),
        ]
    )

    # Assert
    assert together.sort("instrument", "event_timestamp").equals(alone)


def test_labels_are_the_forward_log_return_and_its_sign_and_null_without_a_future():
    # Arrange
    bars = random_bars("BINANCE:AAAUSDT", 30, seed=5)
    closes, close = [], None
    by_second = {int((b["bar_start"] - START).total_seconds()): b for b in bars}
    for s in range(max(by_second) + 1):
        close = by_second[s]["close"] if s in by_second else close
        closes.append(close)

    # Act
    labels = compute_labels(pl.DataFrame(bars), CONFIG, bar_s=1)

    # Assert
    returns = labels["fwd_log_return_3s"].to_list()
    for i, value in enumerate(returns):
        if i + 3 >= len(closes):
            assert value is None
        else:
            assert value == pytest.approx(math.log(closes[i + 3] / closes[i]), rel=1e-12)
    signs = labels["fwd_sign_3s"].to_list()
    assert signs[:-3] == [(r > 0) - (r < 0) for r in returns[:-3]]


def test_flow_without_the_taker_split_and_windows_off_the_bar_grid_are_refused():
    # Arrange
    bars = pl.DataFrame(random_bars("BINANCE:AAAUSDT", 10, seed=6)).with_columns(
        buy_volume=pl.lit(None, pl.Float64)
    )

    # Act / Assert
    with pytest.raises(ValueError, match="taker buy/sell"):
        compute_features(bars, CONFIG, ("price", "flow"), bar_s=1)
    with pytest.raises(ValueError, match="not a multiple"):
        compute_features(bars, FeatureConfig(windows_s=(90,)), ("price",), bar_s=60)
    with pytest.raises(ValueError, match="book frame"):
        compute_features(bars, CONFIG, ("price", "book"), bar_s=1)
