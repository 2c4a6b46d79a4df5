"""Entities: the key every feature row is stored and served under."""

from feast import Entity, ValueType

from trading_assets.lib.feature_store.spec import ENTITY

symbol = Entity(
    name=ENTITY,
    join_keys=[ENTITY],
    value_type=ValueType.STRING,
    description="Exchange symbol as Binance spells it (upper case), e.g. BTCUSDT.",
)
