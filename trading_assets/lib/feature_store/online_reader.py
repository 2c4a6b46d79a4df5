"""The newest-vector reader of the Feast online store, shared by the sidecar and the staleness
sensor so that both judge a vector's age the same way.

:class:`OnlineFeatureReader` reads one symbol's vector per view with ``online_read`` (what
``get_online_features`` does underneath), which also gives each view's event time to the
microsecond; ``OnlineResponse.to_dict(include_event_timestamps=True)`` keeps whole seconds only.
On Feast's Redis store the views' reads go out in one pipeline, one round trip a vector, as
``get_online_features`` batches them (:class:`_RedisViews`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trading_assets.lib.feature_store.spec import ENTITY

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NUMERIC_FIELDS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "bool_val"})


@dataclass(frozen=True)
class OnlineRead:
    """One online-store read: the values, their event time, and how long the read took."""

    values: Mapping[str, float | None]
    event_time_ns: int
    latency_s: float


def _entity_key(symbol: str) -> EntityKey:
    # Imported on a symbol's first read, not with the module: processes that only need
    # OnlineRead (the sidecar's silver-pull worker, through the fallback types) never load Feast.
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=[ENTITY], entity_values=[Value(string_val=symbol)])


class OnlineFeatureReader:
    """Reads one symbol's newest vector: callable as the fallback controller's ``OnlineSource``.

    ``features``: a feature service (its name or object) or feature references
    (``"view:feature"``). Values come back under the plain feature names in that order; the
    event time is the oldest of the views' event times (a vector is as fresh as its stalest part),
    taken over the views that hold a row for the symbol. Feast does not apply the views' TTL to
    online reads; the caller judges freshness from the event time. The views are resolved once,
    when the reader is built.
    """

    def __init__(self, store: FeatureStore, features: str | FeatureService | Sequence[str]) -> None:
        self._store = store
        self._plan = _resolve(store, features)
        self.names: tuple[str, ...] = tuple(name for _, names in self._plan for name in names)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"feature names repeat across views: {self.names}")
        self._keys: dict[str, list[EntityKey]] = {}
        self._redis = _RedisViews.of(store, self._plan)

    def read(self, symbol: str) -> OnlineRead | None:
        """The symbol's values, event time and read latency; None when no view holds a row."""
        started = time.perf_counter()
        keys = self._keys.get(symbol)
        if keys is None:
            keys = self._keys[symbol] = [_entity_key(symbol)]
        if self._redis is not None:
            rows = self._redis.read(symbol, keys)
        else:
            provider, config = self._store.provider, self._store.config
            rows = []
            for view, names in self._plan:
                # A copy: Feast's Redis store appends its timestamp field to the list it is given.
                (row,) = provider.online_read(config, view, keys, list(names))
                rows.append(row)
        values: dict[str, float | None] = {}
        oldest: dt.datetime | None = None
        for (_, names), (event_time, protos) in zip(self._plan, rows, strict=True):
            # Redis answers a missing key with empty values and a zero timestamp.
            if event_time is None or protos is None or event_time == _EPOCH:
                values.update(dict.fromkeys(names))
                continue
            oldest = event_time if oldest is None else min(oldest, event_time)
            for name in names:
                values[name] = _float(protos.get(name))
        latency = time.perf_counter() - started
        if oldest is None:
            return None
        return OnlineRead(values, _to_ns(oldest), latency)

    __call__ = read


class _RedisViews:
    """Every view's ``HMGET`` of one symbol in one Redis pipeline: one round trip per read, where
    ``online_read`` per view takes one each (and hashes the views' field names again every time).
    Feast's ``get_online_features`` batches its views the same way
    (``RedisOnlineStore._read_features_per_fv``), with the same store methods used here, so the
    keys, the hashed field names and the decoding stay Feast's own; what this adds is computing
    the field names once per view and the key once per symbol. Those methods are the store's
    private ones: a Feast upgrade must keep the integration tests of this reader passing."""

    def __init__(self, online: Any, config: Any, plan: list[tuple[FeatureView, list[str]]]) -> None:
        from feast.infra.online_stores.redis import _versioned_fv_name

        self._online = online
        self._config = config
        # Per view: its stored name, the requested names with its timestamp field appended (to
        # a copy of the plan's list), and their hashed field keys.
        self._views: list[tuple[str, list[str], list[Any]]] = []
        for view, names in plan:
            stored = _versioned_fv_name(view, config)
            requested, fields = online._generate_hset_keys_for_features(view, list(names), stored)
            self._views.append((stored, requested, fields))
        self._redis_keys: dict[str, bytes] = {}

    @classmethod
    def of(
        cls, store: FeatureStore, plan: list[tuple[FeatureView, list[str]]]
    ) -> _RedisViews | None:
        """The batched reads for a store on Feast's Redis online store, else None."""
        if getattr(store.config.online_store, "type", None) != "redis":
            return None
        from feast.infra.online_stores.redis import RedisOnlineStore

        online = getattr(store.provider, "online_store", None)
        return cls(online, store.config, plan) if isinstance(online, RedisOnlineStore) else None

    def read(self, symbol: str, keys: list[EntityKey]) -> list[tuple[Any, Any]]:
        """(event time, protos) per view, in the plan's order, as ``online_read`` returns them."""
        online = self._online
        redis_key = self._redis_keys.get(symbol)
        if redis_key is None:
            (redis_key,) = online._generate_redis_keys_for_entities(self._config, keys)
            self._redis_keys[symbol] = redis_key
        replies = online._read_hash_fields(
            self._config, [(redis_key, fields) for _, _, fields in self._views]
        )
        return [
            online._get_features_for_entity(reply, name, requested)
            for reply, (name, requested, _) in zip(replies, self._views, strict=True)
        ]


def _resolve(
    store: FeatureStore, features: str | FeatureService | Sequence[str]
) -> list[tuple[FeatureView, list[str]]]:
    """(view, feature names) in the service's or the references' order."""
    if isinstance(features, str):
        features = store.get_feature_service(features)
    pairs: Iterable[tuple[str, list[str]]]
    if isinstance(features, Sequence):
        grouped: dict[str, list[str]] = {}
        for ref in features:
            view_name, sep, name = ref.partition(":")
            if not sep or not name:
                raise ValueError(f"feature reference {ref!r} is not 'view:feature'")
            grouped.setdefault(view_name, []).append(name)
        pairs = grouped.items()
    else:
        pairs = [(p.name, [f.name for f in p.features]) for p in features.feature_view_projections]
    return [(store.get_feature_view(view), names) for view, names in pairs]


def _float(proto: Any) -> float | None:
    if proto is None:
        return None
    field = proto.WhichOneof("val")
    return float(getattr(proto, field)) if field in _NUMERIC_FIELDS else None


def _to_ns(moment: dt.datetime) -> int:
    # Integer arithmetic on the timedelta: exact to the microsecond Feast keeps.
    delta = moment - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1_000
