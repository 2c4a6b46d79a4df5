"""The sidecar's online-store adapter against real Redis and real sqlite: the background writer
pushes through the repository's push sources and its rows come back through the reader and Feast's
``get_online_features`` exactly, bursts and a tiny queue coalesce to the newest row, and a Redis
outage is counted and survived."""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from feast.data_source import PushMode
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from redis import Redis

from streaming.online import OnlineFeatureReader, OnlineFeatureWriter, push_sources
from tests.services import free_port
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
from trading_assets.lib.features import FeatureRow
from trading_assets.resources.feast import FeastResource

PRICE = spec.group_features("price")
FLOW = spec.group_features("flow")
BOOK = spec.group_features("book")
T0_US = 1_709_294_400_000_000  # 2024-03-01 12:00:00 UTC (bars end on whole seconds)
SUB_SECOND_US = 123_456
TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'trading_%'"
WAIT_S = 60.0  # generous bound for waits on a shared machine; never an assertion about speed


def redis_feast(root: Path, connection_string: str) -> FeastResource:
    return FeastResource(
        environment="prod",
        data_root=str(root),
        registry_path=str(root / "registry.db"),
        redis_connection_string=connection_string,
    )


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "redis":
        redis = request.getfixturevalue("redis")
        # One server per session: start from an empty store, or rows of other tests would win.
        Redis(host=redis.host, port=redis.port).flushdb()
        resource = redis_feast(tmp_path, redis.connection_string)
    else:
        resource = FeastResource.local(tmp_path)
    feature_store = resource.store()
    apply_definitions(feature_store, load_definitions())
    return feature_store


def values(names: list[str], base: float) -> dict[str, float | None]:
    """Distinct, non-round floats (a lossy conversion would show)."""
    return {name: base + i / 7 for i, name in enumerate(names)}


def row(symbol: str, at_us: int, base: float, names: list[str] | None = None) -> FeatureRow:
    return FeatureRow(symbol, at_us, values(names or PRICE + FLOW + BOOK, base))


def test_written_rows_come_back_exactly_with_their_event_time(store):
    older = row("BINANCE:BTCUSDT", T0_US, 1.5)
    newest = row("BINANCE:BTCUSDT", T0_US + 1_000_000 + SUB_SECOND_US, 2.5)
    newest.values[PRICE[1]] = math.nan
    newest.values[FLOW[2]] = None
    other = row("BINANCE:ETHUSDT", T0_US + 2_000_000, -3.25)
    # Nothing drains before close(): one batch, where the newest BTCUSDT row replaces the older.
    writer = OnlineFeatureWriter(store, flush_every_s=60)

    for submitted in (older, newest, other):
        writer.submit(submitted)
    flushed = writer.close()
    reader = OnlineFeatureReader(store, "signal_v1")
    btc, eth = reader.read("BINANCE:BTCUSDT"), reader("BINANCE:ETHUSDT")

    assert flushed
    assert btc is not None and eth is not None
    expected = {k: (None if v is None or math.isnan(v) else v) for k, v in newest.values.items()}
    assert btc.values == expected
    # Redis keeps the microseconds; Feast's sqlite store keeps whole seconds, truncated (the
    # vector looks older than it is, never newer).
    kept_us = SUB_SECOND_US if store.config.online_store.type == "redis" else 0
    assert btc.event_time_ns == (T0_US + 1_000_000 + kept_us) * 1_000
    assert eth.values == other.values
    assert eth.event_time_ns == other.event_timestamp_us * 1_000
    assert list(btc.values) == PRICE + FLOW + BOOK  # the service's order
    assert btc.latency_s > 0
    # Feast's own read path serves the same vector.
    served = store.get_online_features(
        features=store.get_feature_service("signal_v1"),
        entity_rows=[{"instrument": "BINANCE:BTCUSDT"}],
    ).to_dict()
    assert {name: served[name][0] for name in btc.values} == btc.values
    stats = writer.stats()
    assert (stats.rows_submitted, stats.rows_written, stats.rows_superseded) == (3, 2, 1)
    assert stats.rows_pending == 0 and stats.errors == 0


def test_a_sqlite_read_does_not_wait_for_another_process_writing(tmp_path):
    store = FeastResource.local(tmp_path).store()
    apply_definitions(store, load_definitions())
    writer = OnlineFeatureWriter(store, flush_every_s=60)
    writer.submit(row("BINANCE:BTCUSDT", T0_US, 1.5))
    assert writer.close()
    db_path = SqliteOnlineStore._get_db_path(store.config)
    reader = OnlineFeatureReader(store, "signal_v1")

    # Another process (a Dagster materialization) in the middle of a write transaction: in
    # sqlite's rollback mode it locks readers out; the sidecar's read must not wait for it.
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        other.execute(f"DELETE FROM {other.execute(TABLES).fetchone()[0]}")
        during = reader.read("BINANCE:BTCUSDT")
        other.execute("ROLLBACK")
        journal = other.execute("PRAGMA journal_mode").fetchone()[0]

    assert journal == "wal"
    assert during is not None and during.values[PRICE[0]] == 1.5  # the committed row, at once


def test_a_missing_value_replaces_the_stored_one(store):
    writer = OnlineFeatureWriter(store, flush_every_s=0.01)
    writer.submit(row("BINANCE:BTCUSDT", T0_US, 1.0))
    assert writer.flush(WAIT_S)
    later = row("BINANCE:BTCUSDT", T0_US + 1_000_000, 2.0)
    del later.values[PRICE[0]]  # a view's feature the row lacks is stored as missing too
    later.values[BOOK[0]] = math.nan

    writer.submit(later)
    writer.close()
    got = OnlineFeatureReader(store, [f"price:{PRICE[0]}", f"price:{PRICE[1]}", f"book:{BOOK[0]}"])

    read = got.read("BINANCE:BTCUSDT")
    assert read is not None
    assert read.values == {PRICE[0]: None, PRICE[1]: later.values[PRICE[1]], BOOK[0]: None}


def test_the_vector_is_as_old_as_its_stalest_view(store):
    trades = row("BINANCE:BTCUSDT", T0_US + 5_000_000, 1.0, PRICE + FLOW)
    book = row("BINANCE:BTCUSDT", T0_US, 7.0, BOOK)
    writer = OnlineFeatureWriter(store)

    writer.submit(book)
    writer.submit(trades)  # other groups: must not replace the book row
    writer.close()
    read = OnlineFeatureReader(store, "signal_v1").read("BINANCE:BTCUSDT")
    trades_only = OnlineFeatureReader(store, "signal_trades_v1").read("BINANCE:BTCUSDT")

    assert read is not None and trades_only is not None
    assert read.event_time_ns == book.event_timestamp_us * 1_000
    assert trades_only.event_time_ns == trades.event_timestamp_us * 1_000
    assert read.values[BOOK[-1]] == book.values[BOOK[-1]]
    assert read.values[PRICE[-1]] == trades.values[PRICE[-1]]


def test_unknown_symbol_reads_none(store):
    with OnlineFeatureWriter(store) as writer:
        writer.submit(row("BINANCE:BTCUSDT", T0_US, 1.0))

    reader = OnlineFeatureReader(store, "signal_v1")

    assert reader.read("BINANCE:NOSUCHUSDT") is None
    assert reader.read("BINANCE:BTCUSDT") is not None


def test_a_row_with_a_non_numeric_value_is_rejected_and_later_rows_still_land(store):
    bad = row("BINANCE:BTCUSDT", T0_US, 1.0)
    bad.values[FLOW[0]] = "1.5"  # type: ignore[assignment]  # a caller's bug, on purpose
    good = row("BINANCE:ETHUSDT", T0_US, 2.0)
    writer = OnlineFeatureWriter(store, flush_every_s=60)

    writer.submit(bad)
    writer.submit(good)
    flushed = writer.close()
    reader = OnlineFeatureReader(store, "signal_v1")

    assert flushed
    assert reader.read("BINANCE:BTCUSDT") is None
    eth = reader.read("BINANCE:ETHUSDT")
    assert eth is not None and eth.values == good.values
    stats = writer.stats()
    assert (stats.rows_rejected, stats.rows_written, stats.errors) == (1, 1, 0)


def test_a_burst_from_several_threads_lands_the_newest_row_of_every_symbol(store):
    threads, symbols_per_thread, rows_per_symbol = 4, 5, 200
    writer = OnlineFeatureWriter(store, max_batch_rows=256, flush_every_s=0.01)

    def produce(thread: int) -> None:
        for step in range(rows_per_symbol):
            for s in range(symbols_per_thread):
                symbol = f"BINANCE:S{thread}X{s}USDT"
                writer.submit(row(symbol, T0_US + step * 1_000_000, thread * 1_000 + s + step))

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    assert writer.close(WAIT_S)

    reader = OnlineFeatureReader(store, "signal_v1")
    last = rows_per_symbol - 1
    for t in range(threads):
        for s in range(symbols_per_thread):
            read = reader.read(f"BINANCE:S{t}X{s}USDT")
            assert read is not None
            assert read.values == row("X", 0, t * 1_000 + s + last).values
            assert read.event_time_ns == (T0_US + last * 1_000_000) * 1_000
    stats = writer.stats()
    assert stats.rows_submitted == threads * symbols_per_thread * rows_per_symbol
    assert stats.rows_pending == 0 and stats.errors == 0 and stats.batches >= 1
    assert stats.rows_written >= threads * symbols_per_thread
    resolved = stats.rows_written + stats.rows_coalesced + stats.rows_superseded
    assert resolved == stats.rows_submitted


def test_a_tiny_queue_coalesces_and_the_newest_row_wins(store):
    symbols = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"]
    # No timed or size-triggered drain before the queue overflows: the first fold is certain.
    writer = OnlineFeatureWriter(store, max_queue_rows=4, max_batch_rows=10_000, flush_every_s=60)

    for step in range(100):
        for i, symbol in enumerate(symbols):
            writer.submit(row(symbol, T0_US + step * 1_000_000, 10 * i + step))
    writer.submit(row("BINANCE:BTCUSDT", T0_US, -1.0))  # late and old: must not win
    assert writer.close(WAIT_S)

    reader = OnlineFeatureReader(store, "signal_v1")
    for i, symbol in enumerate(symbols):
        read = reader.read(symbol)
        assert read is not None
        assert read.values == row(symbol, 0, 10 * i + 99).values
        assert read.event_time_ns == (T0_US + 99 * 1_000_000) * 1_000
    stats = writer.stats()
    assert stats.rows_coalesced >= 2  # rows 1..5 fold to one per symbol before any drain
    assert stats.rows_written + stats.rows_coalesced + stats.rows_superseded == 301
    assert stats.rows_pending == 0


def test_a_mixed_batch_sends_each_view_the_newest_row_holding_its_values(store):
    """One batch of rows out of order, with ties and with some views' values missing: each view
    gets, per symbol, the newest row holding a value for it (the later of a tie), as a plain
    reading of that rule over the batch says; rows with no value anywhere are skipped."""
    rng = random.Random(5)
    symbols = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"]
    views = {"price": PRICE, "flow": FLOW, "book": BOOK}
    for trial in range(4):
        clear_contents(store)
        rows = []
        for index in range(60):
            symbol = rng.choice(symbols)
            # Whole seconds (sqlite keeps no less), few of them: ties are common.
            submitted = row(symbol, T0_US + rng.randrange(8) * 1_000_000, trial * 100 + index)
            for names in views.values():
                if rng.random() < 0.4:  # this view's values all missing, as None or NaN
                    for name in names:
                        submitted.values[name] = rng.choice([None, math.nan])
            rows.append(submitted)
        writer = OnlineFeatureWriter(store, flush_every_s=60)  # one batch, at close
        for submitted in rows:
            writer.submit(submitted)
        assert writer.close(WAIT_S)

        chosen = set()
        for view, names in views.items():
            reader = OnlineFeatureReader(store, [f"{view}:{name}" for name in names])
            for symbol in symbols:
                holding = [
                    (r.event_timestamp_us, i)
                    for i, r in enumerate(rows)
                    if r.symbol == symbol and any(not _missing(r.values[n]) for n in names)
                ]
                read = reader.read(symbol)
                if not holding:
                    assert read is None
                    continue
                _, newest = max(holding)
                chosen.add(newest)
                assert read is not None
                expected = rows[newest].values
                assert read.values == {n: (None if _missing(expected[n]) else expected[n])
                                       for n in names}  # fmt: skip
                assert read.event_time_ns == rows[newest].event_timestamp_us * 1_000
        skipped = sum(all(_missing(v) for v in r.values.values()) for r in rows)
        stats = writer.stats()
        assert (stats.rows_written, stats.rows_skipped) == (len(chosen), skipped)
        assert stats.rows_superseded == len(rows) - len(chosen) - skipped


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


@contextlib.contextmanager
def restartable_redis() -> Iterator[tuple[int, list[subprocess.Popen]]]:
    """A private redis-server (the session one is shared) that a test may stop and start again
    on the same port; yields the port and the list holding the running process."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    processes: list[subprocess.Popen] = []

    def start() -> None:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(process)
        wait_until(lambda: _pings(port))

    start()
    try:
        yield port, processes
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def _pings(port: int) -> bool:
    try:
        return bool(Redis(host="127.0.0.1", port=port, socket_connect_timeout=1).ping())
    except Exception:
        return False


def wait_until(condition, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def test_a_redis_outage_is_counted_and_later_rows_still_land(tmp_path):
    with restartable_redis() as (port, processes):
        store = redis_feast(tmp_path, f"127.0.0.1:{port}").store()
        apply_definitions(store, load_definitions())
        writer = OnlineFeatureWriter(store, flush_every_s=0.01, error_backoff_s=0.05)
        writer.submit(row("BINANCE:BTCUSDT", T0_US, 1.0))
        assert writer.flush(WAIT_S)

        processes[-1].terminate()
        processes[-1].wait(timeout=10)
        during = row("BINANCE:BTCUSDT", T0_US + 1_000_000, 2.0)
        writer.submit(during)
        wait_until(lambda: writer.stats().errors >= 1)
        failing = writer.stats()
        restarted = subprocess.Popen(
            processes[-1].args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(restarted)
        wait_until(lambda: _pings(port))
        after = row("BINANCE:ETHUSDT", T0_US + 2_000_000, 3.0)
        writer.submit(after)
        flushed = writer.flush(WAIT_S)
        writer.close()

        reader = OnlineFeatureReader(store, "signal_v1")
        btc, eth = reader.read("BINANCE:BTCUSDT"), reader.read("BINANCE:ETHUSDT")
        assert failing.last_error is not None and failing.rows_pending == 1
        assert flushed
        # The restarted server is empty: BTCUSDT is there only because the failed row was retried.
        assert btc is not None and btc.values == during.values
        assert eth is not None and eth.values == after.values
        stats = writer.stats()
        assert stats.errors >= 1 and stats.last_error is None
        assert stats.rows_written == 3 and stats.rows_pending == 0


def test_each_view_is_fed_through_its_own_push_source(store):
    # Act
    sources = push_sources(store, spec.ALL_GROUPS)

    # Assert: the repository's push sources, each carrying the features of the view it feeds
    assert sources == {
        "price_push_source": PRICE,
        "flow_push_source": FLOW,
        "book_push_source": BOOK,
    }


def test_a_pushed_row_is_served_by_get_online_features_for_signal_v1_on_redis(redis, tmp_path):
    # Arrange
    Redis(host=redis.host, port=redis.port).flushdb()
    store = redis_feast(tmp_path, redis.connection_string).store()
    apply_definitions(store, load_definitions())
    pushed = row("BINANCE:BTCUSDT", T0_US + SUB_SECOND_US, 4.75)
    writer = OnlineFeatureWriter(store, flush_every_s=60)

    # Act
    writer.submit(pushed)
    flushed = writer.close(WAIT_S)
    served = store.get_online_features(
        features=store.get_feature_service("signal_v1"),
        entity_rows=[{"instrument": "BINANCE:BTCUSDT"}, {"instrument": "BINANCE:ETHUSDT"}],
    ).to_dict()

    # Assert
    assert flushed
    assert served["instrument"] == ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
    assert {name: served[name][0] for name in PRICE + FLOW + BOOK} == pushed.values
    assert all(served[name][1] is None for name in PRICE + FLOW + BOOK)
    assert writer.stats().rows_written == 1 and writer.stats().batches == 1


def test_only_the_push_sources_of_the_writers_views_are_pushed(store):
    # Arrange: a writer for the trade views; the row also carries book features
    writer = OnlineFeatureWriter(store, views=spec.TRADE_GROUPS, flush_every_s=60)
    pushed = row("BINANCE:BTCUSDT", T0_US, 1.25)

    # Act
    writer.submit(pushed)
    assert writer.close(WAIT_S)
    trades = OnlineFeatureReader(store, "signal_trades_v1").read("BINANCE:BTCUSDT")
    book = OnlineFeatureReader(store, [f"book:{name}" for name in BOOK]).read("BINANCE:BTCUSDT")

    # Assert
    assert trades is not None
    assert trades.values == {name: pushed.values[name] for name in PRICE + FLOW}
    assert book is None


def test_a_row_with_no_value_for_a_source_leaves_its_views_as_they_were(store):
    # Arrange: the book view holds a row; a later row has only missing book values
    writer = OnlineFeatureWriter(store, flush_every_s=0.01)
    first = row("BINANCE:BTCUSDT", T0_US, 1.0)
    writer.submit(first)
    assert writer.flush(WAIT_S)
    later = row("BINANCE:BTCUSDT", T0_US + 1_000_000, 2.0)
    for name in BOOK:
        later.values[name] = math.nan

    # Act
    writer.submit(later)
    assert writer.close(WAIT_S)
    book = OnlineFeatureReader(store, [f"book:{name}" for name in BOOK]).read("BINANCE:BTCUSDT")
    price = OnlineFeatureReader(store, [f"price:{name}" for name in PRICE]).read("BINANCE:BTCUSDT")

    # Assert: the book view keeps the older row and says how old it is; price moved on
    assert book is not None and price is not None
    assert book.values == {name: first.values[name] for name in BOOK}
    assert book.event_time_ns == first.event_timestamp_us * 1_000
    assert price.values == {name: later.values[name] for name in PRICE}
    assert writer.stats().rows_written == 2


def stored_contents(store) -> dict:
    """Everything the online store holds for the project, as raw stored values."""
    config = store.config.online_store
    if config.type == "redis":
        client = Redis.from_url(f"redis://{config.connection_string.split(',')[0]}")
        return {key: client.hgetall(key) for key in sorted(client.keys("*"))}
    db = SqliteOnlineStore._get_db_path(store.config)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        tables = [name for (name,) in connection.execute(TABLES)]
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())
            for table in tables
        }


def clear_contents(store) -> None:
    config = store.config.online_store
    if config.type == "redis":
        Redis.from_url(f"redis://{config.connection_string.split(',')[0]}").flushdb()
        return
    db = SqliteOnlineStore._get_db_path(store.config)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        for (table,) in connection.execute(TABLES).fetchall():
            connection.execute(f"DELETE FROM {table}")
        connection.commit()


def test_the_writer_stores_exactly_what_feast_push_stores(store):
    # Arrange: rows with sub-second times, a NaN and a None among the values, two symbols
    btc = row("BINANCE:BTCUSDT", T0_US + SUB_SECOND_US, 1.5)
    btc.values[PRICE[1]] = math.nan
    btc.values[FLOW[0]] = None
    eth = row("BINANCE:ETHUSDT", T0_US + 1_000_000, -2.25)
    sources = push_sources(store, spec.ALL_GROUPS)

    # Act: Feast's own push of the same rows, then the writer's on an emptied store
    for source, names in sources.items():
        frame = pd.DataFrame(
            {
                spec.ENTITY: [r.symbol for r in (btc, eth)],
                spec.TIMESTAMP_FIELD: pd.to_datetime(
                    [r.event_timestamp_us for r in (btc, eth)], unit="us", utc=True
                ),
                **{n: [math.nan if r.values[n] is None else r.values[n] for r in (btc, eth)]
                   for n in names},
            }
        )  # fmt: skip
        store.push(source, frame, to=PushMode.ONLINE)
    by_feast = stored_contents(store)
    clear_contents(store)
    writer = OnlineFeatureWriter(store, flush_every_s=60)
    writer.submit(btc)
    writer.submit(eth)
    assert writer.close(WAIT_S)
    by_writer = stored_contents(store)

    # Assert: byte for byte, every key and field (Redis) or row (sqlite)
    assert by_feast and sum(len(v) for v in by_feast.values()) > 0
    assert by_writer == by_feast
