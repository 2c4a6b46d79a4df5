"""Feast online store on a real redis-server: one symbol's ``signal_v1`` vector, and push rates.

(a) Reads, p50 / p99 over many reads. The reference row is Feast's plain
``FeatureStore.get_online_features(features=[...refs], entity_rows=[...])``; the faster paths stay
inside Feast's APIs: the same call with the cached feature service object, and the Redis online
store's own ``online_read`` per view with a prebuilt entity key (what ``get_online_features``
does underneath, minus resolving references and building the response). The last is the
sidecar's read (``streaming.online.OnlineFeatureReader``). Target p99 ≤ 1 ms.
(b) Writes: feature rows per second, by batch size. ``store.push`` to the push sources (a
DataFrame per push source, built in the timed section because the sidecar builds it too) is the
sidecar's write path (``streaming.online.OnlineFeatureWriter``). Next to it, as a floor, the
online store's own ``online_write_batch`` (rows built from floats, also timed: Feast's DataFrame →
proto conversion is much of ``push``), with and without the Redis store's ``skip_dedup`` (one
round trip instead of a timestamp read first). A batch is one row per symbol for each of the
three views, as the sidecar writes every group per bar; every batch carries a newer event time
than the last, or Redis' dedup would skip the write, and the newest value is read back to prove
it landed. Target ≥ 20k rows/s with batching; the table reports the best batch size per path.
"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

READS = 3_000
WARMUP = 200
BATCH_SIZES = (1, 10, 100, 1_000, 10_000)
TARGET_ROWS_PER_S = 20_000
MIN_SECONDS = 0.3  # per write run: enough batches that one slow call does not decide it
MAX_ROWS = 30_000  # per write run: caps the small-batch runs that never reach the target
WRITE_RUNS = 3  # per case; the median is reported (the host is shared, single runs are noisy)
SYMBOL = "BINANCE:BTCUSDT"  # an instrument id, the feature store's entity value

Writer = Callable[[list[str], dt.datetime, float], None]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of durations in seconds, in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


def time_calls(call: Callable[[], object], count: int = READS) -> tuple[float, float]:
    """p50 / p99 (ms) of ``call`` after a warm-up."""
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def value(base: float, feature: int, symbol: int) -> float:
    """A distinct value per batch, feature and symbol, so a read-back can tell batches apart."""
    return base + feature / 100 + symbol / 1e6


def feature_rows(names: list[str], symbols: list[str], at: dt.datetime, base: float = 0.0):
    """A push DataFrame: one row per symbol at ``at``."""
    import pandas as pd

    data = {"instrument": symbols, "event_timestamp": [at] * len(symbols)}
    data.update({n: [value(base, i, j) for j in range(len(symbols))] for i, n in enumerate(names)})
    return pd.DataFrame(data)


def proto_rows(names: list[str], symbols: list[str], at: dt.datetime, base: float) -> list:
    """What the sidecar holds (floats per symbol) as the online store's write rows."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return [
        (
            EntityKey(join_keys=["instrument"], entity_values=[Value(string_val=symbol)]),
            {name: Value(double_val=value(base, i, j)) for i, name in enumerate(names)},
            at,
            None,
        )
        for j, symbol in enumerate(symbols)
    ]


def write_rate(write: Writer, symbols: list[str], views: int, start: dt.datetime, check) -> float:
    """Feature rows/s of ``write`` in batches of ``len(symbols)`` symbols × ``views`` views; each
    batch one millisecond newer than the last, its values tagged with the batch number."""
    batches, elapsed = 0, 0.0
    while batches == 0 or (elapsed < MIN_SECONDS and batches * len(symbols) * views < MAX_ROWS):
        at = start + dt.timedelta(milliseconds=batches)
        started = time.perf_counter()
        write(symbols, at, float(batches))
        elapsed += time.perf_counter() - started
        batches += 1
    check(symbols[-1], value(float(batches - 1), 0, len(symbols) - 1))
    return batches * len(symbols) * views / elapsed


def main() -> None:
    """Start redis-server, apply the repository, print the read and write tables."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from tests.services import redis_server
    from trading_assets.lib.feature_store import spec
    from trading_assets.lib.feature_store.repo import apply_definitions, load_definitions
    from trading_assets.resources.feast import FeastResource

    groups = spec.SERVICES["signal_v1"]
    names = {group: spec.group_features(group) for group in groups}
    now = dt.datetime.now(dt.UTC)
    with redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        resource = FeastResource(
            environment="prod",
            data_root=tmp,
            registry_path=str(Path(tmp) / "registry.db"),
            redis_connection_string=redis.connection_string,
        )
        store = resource.store()
        apply_definitions(store, load_definitions())
        for group in groups:
            store.push(f"{group}_push_source", feature_rows(names[group], [SYMBOL], now))

        refs = [f"{group}:{name}" for group in groups for name in names[group]]
        rows = [{"instrument": SYMBOL}]
        service = store.get_feature_service("signal_v1")
        views = [store.get_feature_view(group) for group in groups]
        online = store.provider.online_store
        key = EntityKey(join_keys=["instrument"], entity_values=[Value(string_val=SYMBOL)])
        config = store.config
        online_config = config.online_store
        assert isinstance(online_config, RedisOnlineStoreConfig)

        def read_views() -> list:
            return [online.online_read(config, view, [key]) for view in views]

        reference = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        fast = {
            name: proto.double_val
            for result in read_views()
            for _, values in result
            for name, proto in (values or {}).items()
        }
        assert all(fast[name] == reference[name][0] for name in fast), "fast path disagrees"
        assert len(fast) == len(refs)

        print(
            f"(a) online read of one {SYMBOL} signal_v1 vector ({len(refs)} features), "
            f"{READS} reads, ms"
        )
        print(f"{'path':<58} {'p50':>8} {'p99':>8}")
        cases = [
            ("get_online_features(features=[refs]) (reference)",
             lambda: store.get_online_features(features=refs, entity_rows=rows)),
            ("get_online_features(features=<FeatureService>)",
             lambda: store.get_online_features(features=service, entity_rows=rows)),
            ("online_store.online_read per view (3 views)", read_views),
        ]  # fmt: skip
        for label, call in cases:
            p50, p99 = time_calls(call)
            print(f"{label:<58} {p50:>8.3f} {p99:>8.3f}")

        probe = f"{groups[0]}:{names[groups[0]][0]}"

        def check(symbol: str, expected: float) -> None:
            got = store.get_online_features(features=[probe], entity_rows=[{"instrument": symbol}])
            assert got.to_dict()[names[groups[0]][0]] == [expected], "a batch did not land"

        def push(symbols: list[str], at: dt.datetime, base: float) -> None:
            for group in groups:
                store.push(f"{group}_push_source", feature_rows(names[group], symbols, at, base))

        def write_batch(symbols: list[str], at: dt.datetime, base: float) -> None:
            for view in views:
                online.online_write_batch(
                    config, view, proto_rows(names[view.name], symbols, at, base), None
                )

        def write_batch_skip_dedup(symbols: list[str], at: dt.datetime, base: float) -> None:
            online_config.skip_dedup = True
            try:
                write_batch(symbols, at, base)
            finally:
                online_config.skip_dedup = False

        writers: list[tuple[str, Writer]] = [
            ("store.push (DataFrame per source)", push),
            ("online_write_batch", write_batch),
            ("online_write_batch skip_dedup", write_batch_skip_dedup),
        ]
        universe = [f"BINANCE:SYM{i:06d}" for i in range(max(BATCH_SIZES))]
        print(
            f"\n(b) writes into the Redis online store: feature rows/s by batch size (symbols per "
            f"batch × {len(views)} views, median of {WRITE_RUNS}), target >= {TARGET_ROWS_PER_S:,}"
        )
        print(f"{'path':<34}" + "".join(f"{b:>9,}" for b in BATCH_SIZES) + "   best batch")
        start = now
        for label, write in writers:
            rates = []
            for size in BATCH_SIZES:
                runs = []
                for _ in range(WRITE_RUNS):
                    start += dt.timedelta(hours=1)  # newer than anything written before
                    runs.append(write_rate(write, universe[:size], len(views), start, check))
                rates.append(statistics.median(runs))
            best = max(range(len(rates)), key=rates.__getitem__)
            verdict = "meets" if rates[best] >= TARGET_ROWS_PER_S else "misses"
            print(
                f"{label:<34}" + "".join(f"{r:>9,.0f}" for r in rates)
                + f"   {BATCH_SIZES[best]:,} → {rates[best]:,.0f} ({verdict} target)"
            )  # fmt: skip


if __name__ == "__main__":
    main()
