"""Point-in-time correctness of training frames built through Feast's historical retrieval."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.feature_store.training import labels_from_bars, training_frame
from trading_assets.lib.lakehouse.bars import BAR_COLUMNS
from trading_assets.resources.feast import FeastResource

DAY = dt.date(2024, 3, 1)
T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
NAMES = spec.group_features("price") + spec.group_features("flow")
SERVED = spec.service_features(spec.TRAINING_SERVICE)  # model inputs: no level features
GOLD_SECONDS = list(range(30, 301, 7))  # feature rows every 7 s: values change over time
BAR_SECONDS = 1_500
TTL_S = int(spec.view_ttl().total_seconds())
HORIZON = spec.FEATURE_CONFIG.label_horizon_s


def at(second: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=second)


def close_at(second: int) -> float:
    return 100.0 + 3 * math.sin(second / 37) + second / 1_000


def bars() -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "trade_date": [DAY] * BAR_SECONDS,
            "instrument": ["BINANCE:BTCUSDT"] * BAR_SECONDS,
            # A bar starting at s - 1 closes at s: its close is the price known at time s.
            "bar_start": [at(s - 1) for s in range(1, BAR_SECONDS + 1)],
            **{c: [close_at(s) for s in range(1, BAR_SECONDS + 1)] for c in ("open", "close")},
            **{c: [close_at(s) for s in range(1, BAR_SECONDS + 1)] for c in ("high", "low")},
            "volume": [1.0] * BAR_SECONDS,
            "notional": [close_at(s) for s in range(1, BAR_SECONDS + 1)],
            "vwap": [close_at(s) for s in range(1, BAR_SECONDS + 1)],
            "buy_volume": [1.0] * BAR_SECONDS,
            "sell_volume": [0.0] * BAR_SECONDS,
            "trade_count": [1] * BAR_SECONDS,
            "first_trade_id": list(range(BAR_SECONDS)),
            "last_trade_id": list(range(BAR_SECONDS)),
        }
    )
    return frame.select(BAR_COLUMNS).with_columns(
        pl.col("bar_start").cast(pl.Datetime("us", "UTC"))
    )


def gold() -> pl.DataFrame:
    """Feature value = the second it was computed at (+ a per-column offset)."""
    return pl.DataFrame(
        {
            "instrument": ["BINANCE:BTCUSDT"] * len(GOLD_SECONDS),
            "event_timestamp": [at(s) for s in GOLD_SECONDS],
            **{n: [s + i / 100 for s in GOLD_SECONDS] for i, n in enumerate(NAMES)},
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("feast")
    resource = FeastResource.local(root)
    store = resource.store()
    apply_definitions(store, load_definitions())
    offline.export_partition(gold(), resource.offline_features_dir(), DAY, "BINANCE:BTCUSDT")
    return training_frame(store, spec.TRAINING_SERVICE, labels_from_bars(bars()))


def expected_source_second(entity_second: int) -> int | None:
    """The greatest feature second ≤ the entity's, if no older than the TTL."""
    candidates = [s for s in GOLD_SECONDS if s <= entity_second]
    if not candidates or entity_second - candidates[-1] > TTL_S:
        return None
    return candidates[-1]


def seconds_with_features() -> list[int]:
    """Labelled seconds (a full horizon of bars after them) with a feature row within the TTL."""
    labelled = range(1, BAR_SECONDS - HORIZON + 1)
    return [s for s in labelled if expected_source_second(s) is not None]


def test_each_row_gets_the_latest_feature_row_at_or_before_it_never_a_later_one(frame):
    checked = 0
    for row in frame.iter_rows(named=True):
        second = int((row["event_timestamp"] - T0).total_seconds())
        source = expected_source_second(second)
        for name in SERVED:
            expected = None if source is None else source + NAMES.index(name) / 100
            assert row[name] == expected, (second, name, row[name])
        assert source is not None and source <= second
        checked += 1
    assert checked == len(seconds_with_features()) > 0


def test_rows_without_a_feature_row_within_the_ttl_are_left_out(frame):
    seconds = sorted(int((t - T0).total_seconds()) for t in frame["event_timestamp"])

    assert seconds == seconds_with_features()
    assert min(seconds) == GOLD_SECONDS[0]
    assert max(seconds) == GOLD_SECONDS[-1] + TTL_S


def test_labels_come_from_strictly_later_prices_and_unlabelled_rows_are_dropped(frame):
    value, sign = f"fwd_log_return_{HORIZON}s", f"fwd_sign_{HORIZON}s"
    seconds = [int((t - T0).total_seconds()) for t in frame["event_timestamp"]]

    expected = [math.log(close_at(s + HORIZON) / close_at(s)) for s in seconds]

    assert frame.height == len(seconds_with_features()) > 0
    assert frame[value].to_list() == pytest.approx(expected, rel=0, abs=1e-12)
    assert frame[sign].to_list() == [int(math.copysign(1, v)) if v else 0 for v in expected]
    assert (frame["label_end"] > frame["event_timestamp"]).all()
    assert frame[value].null_count() == 0


def test_the_training_service_serves_every_feature_but_the_display_only_levels(frame):
    label_columns = {f"fwd_log_return_{HORIZON}s", f"fwd_sign_{HORIZON}s", "label_end"}
    columns = [
        c for c in frame.columns if c not in {"instrument", "event_timestamp", *label_columns}
    ]

    assert columns == SERVED
    assert set(NAMES) - set(SERVED) == {f"vwap_{w}s" for w in spec.FEATURE_CONFIG.windows_s}
