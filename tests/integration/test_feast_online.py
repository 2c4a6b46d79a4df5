"""Feast apply → push / materialize → get_online_features against real Redis and real sqlite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from redis import Redis

from streaming.online import OnlineFeatureReader
from trading_assets.lib.feature_store import offline, spec
from trading_assets.lib.feature_store.online import MAX_LAG, materialize_newest
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.features import level_feature_names
from trading_assets.resources.feast import FeastResource

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
PRICE = spec.group_features("price")
FLOW = spec.group_features("flow")
BOOK = spec.group_features("book")


def feast_resource(kind: str, root: Path, redis) -> FeastResource:
    if kind == "redis":
        return FeastResource(
            environment="prod",
            data_root=str(root),
            registry_path=str(root / "registry.db"),
            redis_connection_string=redis.connection_string,
        )
    return FeastResource.local(root)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    redis = request.getfixturevalue("redis") if request.param == "redis" else None
    if redis is not None:
        # One server per session: start every test from an empty store (Redis keeps the newest
        # row per key, so rows left by another test would win over older ones written here).
        Redis(host=redis.host, port=redis.port).flushdb()
    feature_store = feast_resource(request.param, tmp_path, redis).store()
    apply_definitions(feature_store, load_definitions())
    return feature_store


def rows(symbols: list[str], names: list[str], at: dt.datetime, base: float) -> pd.DataFrame:
    data: dict[str, list] = {"instrument": symbols, "event_timestamp": [at] * len(symbols)}
    for i, name in enumerate(names):
        data[name] = [base + 10 * s + i / 7 for s in range(len(symbols))]
    return pd.DataFrame(data)


def test_pushed_rows_of_every_view_come_back_exactly_through_signal_v1(store):
    symbols = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    pushed = {
        "price": rows(symbols, PRICE, T0, 1.5),
        "flow": rows(symbols, FLOW, T0, -2.25),
        "book": rows(symbols, BOOK, T0, 0.125),
    }
    for group, frame in pushed.items():
        store.push(f"{group}_push_source", frame)

    service = store.get_feature_service("signal_v1")
    got = store.get_online_features(
        features=service, entity_rows=[{"instrument": s} for s in symbols]
    ).to_dict()

    assert got["instrument"] == symbols
    for frame in pushed.values():
        for name in frame.columns[2:]:
            assert got[name] == frame[name].tolist(), name
    assert len(got) == 1 + len(PRICE) + len(FLOW) + len(BOOK)


def test_a_newer_push_replaces_the_served_row(store):
    store.push("price_push_source", rows(["BINANCE:BTCUSDT"], PRICE, T0, 1.0))
    store.push(
        "price_push_source", rows(["BINANCE:BTCUSDT"], PRICE, T0 + dt.timedelta(seconds=1), 9.0)
    )

    got = store.get_online_features(
        features=[f"price:{PRICE[0]}", f"price:{PRICE[-1]}"],
        entity_rows=[{"instrument": "BINANCE:BTCUSDT"}],
    ).to_dict()

    assert got[PRICE[0]] == [9.0]
    assert got[PRICE[-1]] == [9.0 + (len(PRICE) - 1) / 7]


def gold_rows(symbol: str, day: dt.date, seconds: int, offset: float) -> pl.DataFrame:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    names = PRICE + FLOW
    return pl.DataFrame(
        {
            "instrument": [symbol] * seconds,
            "event_timestamp": [start + dt.timedelta(seconds=s + 1) for s in range(seconds)],
            **{n: [offset + s + i / 100 for s in range(seconds)] for i, n in enumerate(names)},
        }
    ).with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))


def test_materialize_serves_the_gold_row_at_the_latest_timestamp(store, tmp_path):
    day = dt.date(2024, 3, 1)
    directory = offline.partition_file(str(tmp_path / "data/offline/features"), day, "X")
    directory = directory.rsplit("/", 1)[0]
    gold = {
        "BINANCE:BTCUSDT": gold_rows("BINANCE:BTCUSDT", day, 300, 100.0),
        "BINANCE:ETHUSDT": gold_rows("BINANCE:ETHUSDT", day, 120, 5_000.0),
    }
    for symbol, frame in gold.items():
        offline.export_partition(frame, directory, day, symbol)

    result = materialize_newest(store, directory)

    got = store.get_online_features(
        features=store.get_feature_service("signal_trades_v1"),
        entity_rows=[{"instrument": s} for s in gold],
    ).to_dict()
    assert result.symbols_served == sorted(gold)
    assert result.newest == gold["BINANCE:BTCUSDT"]["event_timestamp"].max()
    for i, (symbol, frame) in enumerate(gold.items()):
        latest = frame.sort("event_timestamp").row(-1, named=True)
        assert got["instrument"][i] == symbol
        for name in PRICE + FLOW:
            assert got[name][i] == latest[name], (symbol, name)


def test_a_symbol_silent_for_days_does_not_stretch_the_materialize_window(store, tmp_path):
    directory = str(tmp_path / "data/offline/features")  # where the store's offline source reads
    today, long_ago = dt.date(2024, 3, 5), dt.date(2024, 3, 1)
    offline.export_partition(
        gold_rows("BINANCE:BTCUSDT", today, 60, 100.0), directory, today, "BINANCE:BTCUSDT"
    )
    offline.export_partition(
        gold_rows("BINANCE:DOTUSDT", long_ago, 60, 7.0), directory, long_ago, "BINANCE:DOTUSDT"
    )

    result = materialize_newest(store, directory)

    assert result.symbols_served == ["BINANCE:BTCUSDT"]
    assert result.start >= result.newest - MAX_LAG - spec.view_ttl()


def test_v2_services_leave_out_the_level_features_which_stay_served_for_display(store):
    # Arrange: a row of every view, levels included (the sidecar pushes them for display)
    for group, names in (("price", PRICE), ("flow", FLOW), ("book", BOOK)):
        store.push(f"{group}_push_source", rows(["BINANCE:BTCUSDT"], names, T0, 0.5))
    levels = level_feature_names(spec.FEATURE_CONFIG)

    # Act
    served = {
        service: store.get_online_features(
            features=store.get_feature_service(service),
            entity_rows=[{"instrument": "BINANCE:BTCUSDT"}],
        ).to_dict()
        for service in spec.SERVICES
    }
    display = store.get_online_features(
        features=[f"price:{name}" for name in levels],
        entity_rows=[{"instrument": "BINANCE:BTCUSDT"}],
    ).to_dict()

    # Assert: each service serves its features, v2 none of the levels; the levels are still online
    for service, got in served.items():
        assert set(got) - {"instrument"} == set(spec.service_features(service)), service
        assert OnlineFeatureReader(store, service).names == tuple(spec.service_features(service))
        carried = set(levels) & set(got)
        assert carried == (set(levels) if service in spec.LEVEL_SERVICES else set()), service
    assert {"signal_v2", "signal_trades_v2"}.isdisjoint(spec.LEVEL_SERVICES)
    assert [display[name] for name in levels] == [[0.5 + PRICE.index(n) / 7] for n in levels]
