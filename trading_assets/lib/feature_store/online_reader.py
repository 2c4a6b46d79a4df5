"""The newest-vector reader of the Feast online store, shared by the sidecar and the staleness
sensor so that both judge a vector's age the same way.

:class:`OnlineFeatureReader` reads one symbol's vector per view with ``online_read`` (what
``get_online_features`` does underneath), which also gives each view's event time to the
microsecond; ``OnlineResponse.to_dict(include_event_timestamps=True)`` keeps whole seconds only.
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

    def read(self, symbol: str) -> OnlineRead | None:
        """The symbol's values, event time and read latency; None when no view holds a row."""
        started = time.perf_counter()
        keys = self._keys.get(symbol)
        if keys is None:
            keys = self._keys[symbol] = [_entity_key(symbol)]
        provider, config = self._store.provider, self._store.config
        values: dict[str, float | None] = {}
        oldest: dt.datetime | None = None
        for view, names in self._plan:
            # A copy: Feast's Redis store appends its timestamp field to the list it is given.
            ((event_time, protos),) = provider.online_read(config, view, keys, list(names))
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
