"""Feature views, one per feature group; names and windows come from trading_assets.lib.features.

Each view reads its push source: the sidecar pushes live rows online, and the push source's batch
source (the gold export) feeds materialization and point-in-time training joins.
"""

from data_sources import (
    book_push_source,
    cross_push_source,
    depth_push_source,
    flow_push_source,
    price_push_source,
)
from entities import instrument
from feast import FeatureView, Field
from feast.types import Float64

from trading_assets.lib.feature_store.spec import group_features, view_ttl


def _schema(group: str) -> list[Field]:
    return [Field(name=name, dtype=Float64) for name in group_features(group)]


price = FeatureView(
    name="price",
    entities=[instrument],
    ttl=view_ttl(),
    schema=_schema("price"),
    source=price_push_source,
    online=True,
    description="Returns, volatility and range over the configured windows (trades only).",
)

flow = FeatureView(
    name="flow",
    entities=[instrument],
    ttl=view_ttl(),
    schema=_schema("flow"),
    source=flow_push_source,
    online=True,
    description="Taker buy/sell imbalance, volume and trade intensity (trades only).",
)

book = FeatureView(
    name="book",
    entities=[instrument],
    ttl=view_ttl(),
    schema=_schema("book"),
    source=book_push_source,
    online=True,
    description="Top-of-book spread and imbalance; live only (pushed by the sidecar).",
)

depth = FeatureView(
    name="depth",
    entities=[instrument],
    ttl=view_ttl(),
    schema=_schema("depth"),
    source=depth_push_source,
    online=True,
    description="Depth imbalance, L2 microprice and spread, book slope and order-flow imbalance "
    "from the captured L2 book (where the sidecar captured it: depth_covered).",
)

cross = FeatureView(
    name="cross",
    entities=[instrument],
    ttl=view_ttl(),
    schema=_schema("cross"),
    source=cross_push_source,
    online=True,
    description="Basis, lead-lag return and flow imbalance against the instrument's reference at "
    "another venue or market (TRADING_CROSS_PAIRS).",
)
