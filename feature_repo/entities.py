"""Entities: the key every feature row is stored and served under."""

from feast import Entity, ValueType

from trading_assets.lib.feature_store.spec import ENTITY

instrument = Entity(
    name=ENTITY,
    join_keys=[ENTITY],
    value_type=ValueType.STRING,
    description="Instrument id, VENUE:SYMBOL with the symbol as the venue spells it, e.g. "
    "BINANCE:BTCUSDT or COINBASE:BTC-USD.",
)
