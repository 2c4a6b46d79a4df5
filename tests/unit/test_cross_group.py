"""The cross feature group's contracts: its pairs in the settings, its names and where it can be
computed, each instrument's market, and the lineage of a cross partition."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from streaming.venues import VENUES, venue
from trading_assets.defs.features.cross import reference_mapping
from trading_assets.defs.ingest.partitions import DATE_DIMENSION, INSTRUMENT_DIMENSION
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.cross_gold import day_cross_features
from trading_assets.lib.features import CROSS, IncrementalFeatures, compute_features, trades_frame
from trading_assets.lib.features.cross_venue import CrossPair, cross_feature_names
from trading_assets.lib.instruments import instrument_id, market_of
from trading_assets.lib.lakehouse.bars import bars_from_trades
from trading_assets.lib.lakehouse.records import Trade
from trading_assets.lib.settings import Settings, SettingsError

pytestmark = pytest.mark.venues
INSTRUMENTS = "BINANCE:BTCUSDT,COINBASE:BTC-USD,KRAKEN:BTC/USD"


def settings(pairs: str) -> Settings:
    return Settings.from_environ({"TRADING_INSTRUMENTS": INSTRUMENTS, "TRADING_CROSS_PAIRS": pairs})


def test_pairs_read_as_own_to_reference_in_one_spelling():
    pairs = settings("coinbase:btc-usd=BINANCE:BTCUSDT, KRAKEN:BTC/USD=BINANCE:BTCUSDT")

    assert pairs.cross_references == {
        "COINBASE:BTC-USD": "BINANCE:BTCUSDT",
        "KRAKEN:BTC/USD": "BINANCE:BTCUSDT",
    }
    assert settings("").cross_references == {}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ("COINBASE:BTC-USD", "expected OWN=REFERENCE"),
        ("COINBASE:BTC-USD=BTCUSDT", "not an instrument id"),
        ("COINBASE:BTC-USD=BINANCE:ETHUSDT", "BINANCE:ETHUSDT is not in TRADING_INSTRUMENTS"),
        ("COINBASE:BTC-USD=COINBASE:BTC-USD", "one reference other than itself"),
        (
            "COINBASE:BTC-USD=BINANCE:BTCUSDT,COINBASE:BTC-USD=KRAKEN:BTC/USD",
            "one reference other than itself",
        ),
    ],
)
def test_a_bad_pair_is_refused_naming_the_variable(pairs, message):
    with pytest.raises(SettingsError, match="TRADING_CROSS_PAIRS") as raised:
        settings(pairs)

    assert message in str(raised.value)


def test_the_cross_group_names_are_the_cross_venue_features_and_a_service_serves_them():
    names = spec.group_features(CROSS)

    assert names == cross_feature_names()
    assert set(names) <= set(spec.training_features("signal_cross_v1"))
    assert not set(names) & set(spec.service_features("signal_v2"))  # v2 unchanged


def test_one_instruments_computations_refuse_the_cross_group():
    with pytest.raises(ValueError, match="pairs two instruments"):
        IncrementalFeatures("BINANCE:BTCUSDT", groups=(CROSS,))
    with pytest.raises(ValueError, match="pairs two instruments"):
        compute_features(pl.DataFrame(), groups=("price", CROSS))


@pytest.mark.parametrize("name", sorted(VENUES))
def test_each_venues_market_is_the_market_of_its_instruments(name):
    listed = venue(name)

    assert market_of(instrument_id(listed.name, "BTCUSDT")) == listed.market


def test_a_pair_carries_each_instruments_market():
    pair = CrossPair.of("BINANCE:BTCUSDT", "BINANCE_FUTURES:BTCUSDT")

    assert (pair.own_market, pair.reference_market) == ("spot", "perpetual")
    assert pair.funding == "BINANCE_FUTURES:BTCUSDT"


def test_a_cross_partition_depends_on_its_own_and_its_references_bars():
    instruments = INSTRUMENTS.split(",")
    partitions = dg.MultiPartitionsDefinition(
        {
            DATE_DIMENSION: dg.DailyPartitionsDefinition(start_date="2024-03-01"),
            INSTRUMENT_DIMENSION: dg.StaticPartitionsDefinition(instruments),
        }
    )
    mapping = reference_mapping(instruments, {"COINBASE:BTC-USD": "BINANCE:BTCUSDT"})

    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys(["2024-03-01|COINBASE:BTC-USD"]),
        partitions,
        partitions,
    ).partitions_subset.get_partition_keys()

    assert sorted(upstream) == ["2024-03-01|BINANCE:BTCUSDT", "2024-03-01|COINBASE:BTC-USD"]


def test_a_gold_day_whose_reference_has_no_bars_has_null_reference_features():
    # Arrange: the own instrument's first seconds of a day, and no reference bars at all
    day = dt.date(2024, 3, 1)
    start_ns = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * 1_000_000_000
    trades = [
        Trade("BTC-USD", i, f"{60000 + i}.00000000", "0.10000000", i % 2 == 0,
              start_ns + i * 700_000_000, None, start_ns + i * 700_000_000, "COINBASE")
        for i in range(40)
    ]  # fmt: skip
    own = bars_from_trades(trades_frame("COINBASE:BTC-USD", trades))
    reference = own.clear()

    # Act
    features = day_cross_features(own, reference, day)

    # Assert: one row per own second, own flows still counted, nothing of the reference
    span = own["bar_start"].max() - own["bar_start"].min()  # type: ignore[operator]
    assert features.height == span.total_seconds() + 1  # type: ignore[union-attr]
    assert features["basis_bps"].null_count() == features.height
    assert features["lead_ret_10s"].null_count() == features.height
    warm = features.filter(pl.col("xflow_imb_10s").is_not_null())
    assert warm.height > 0  # the own taker flow alone
