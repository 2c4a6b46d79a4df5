"""Feast online store on a real redis-server: one symbol's ``signal_v1`` vector, and push rates.

(a) Reads, as the sidecar does them, p50 / p99 over many reads. The reference row is Feast's plain
``FeatureStore.get_online_features(features=[...refs], entity_rows=[...])``; the fast paths stay
inside Feast's APIs: the same call with the cached feature service object, and the Redis online
store's own ``online_read`` per view with a prebuilt entity key (what ``get_online_features``
does underneath, minus resolving references and building the response). Target p99 ≤ 1 ms.
(b) Pushes: feature rows per second through ``store.push`` with a DataFrame of N rows (one view
and all three), and through the online store's ``online_write_batch`` with rows built from
floats (Feast's DataFrame → proto conversion is half of ``push``), with and without the Redis
store's ``skip_dedup`` (one round trip instead of a timestamp read first). Target ≥ 20k rows/s.
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
PUSH_SIZES = (1_000, 10_000)
SYMBOL = "BTCUSDT"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


def time_calls(call: Callable[[], object], count: int = READS) -> tuple[float, float]:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def feature_rows(names: list[str], symbols: list[str], at: dt.datetime):
    import pandas as pd

    data = {"symbol": symbols, "event_timestamp": [at] * len(symbols)}
    data.update(
        {name: [float(i) + j / 10 for j in range(len(symbols))] for i, name in enumerate(names)}
    )
    return pd.DataFrame(data)


def proto_rows(names: list[str], symbols: list[str], at: dt.datetime) -> list:
    """What the sidecar holds (floats per symbol) as the online store's write rows; built inside
    the timed section, since the sidecar pays for it too."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return [
        (
            EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=symbol)]),
            {name: Value(double_val=float(i) + j / 10) for i, name in enumerate(names)},
            at,
            None,
        )
        for j, symbol in enumerate(symbols)
    ]


def main() -> None:
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
        rows = [{"symbol": SYMBOL}]
        service = store.get_feature_service("signal_v1")
        views = [store.get_feature_view(group) for group in groups]
        online = store.provider.online_store
        key = EntityKey(join_keys=["symbol"], entity_values=[Value(string_val=SYMBOL)])
        config = store.config

        def read_views() -> list:
            return [online.online_read(config, view, [key]) for view in views]

        reference = store.get_online_features(features=refs, entity_rows=rows).to_dict()
        fast = {
            name: value.double_val
            for result in read_views()
            for _, values in result
            for name, value in (values or {}).items()
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

        print("\n(b) push into the Redis online store, feature rows/s (target >= 20k)")
        print(f"{'batch':<40} {'rows':>8} {'seconds':>9} {'rows/s':>10}")
        for size in PUSH_SIZES:
            symbols = [f"SYM{i:06d}" for i in range(size)]
            frames = {g: feature_rows(names[g], symbols, now) for g in groups}
            started = time.perf_counter()
            store.push("price_push_source", frames["price"])
            elapsed = time.perf_counter() - started
            label = "store.push price (1 view)"
            print(f"{label:<40} {size:>8} {elapsed:>9.3f} {size / elapsed:>10,.0f}")
            started = time.perf_counter()
            for group in groups:
                store.push(f"{group}_push_source", frames[group])
            elapsed = time.perf_counter() - started
            total = size * len(groups)
            print(f"{'store.push price+flow+book (3 views)':<40} {total:>8} {elapsed:>9.3f} "
                  f"{total / elapsed:>10,.0f}")  # fmt: skip
            for skip_dedup in (False, True):
                config.online_store.skip_dedup = skip_dedup
                started = time.perf_counter()
                for view in views:
                    online.online_write_batch(
                        config, view, proto_rows(names[view.name], symbols, now), None
                    )
                elapsed = time.perf_counter() - started
                label = f"online_write_batch 3 views{' skip_dedup' if skip_dedup else ''}"
                print(f"{label:<40} {total:>8} {elapsed:>9.3f} {total / elapsed:>10,.0f}")
            config.online_store.skip_dedup = False


if __name__ == "__main__":
    main()
