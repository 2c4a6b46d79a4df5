"""Binance USD-M futures wire types: frozen msgspec structs with Binance's exact field names.

A futures combined-stream frame's data always names its event in ``e``, so the four events read
here are one union tagged by ``e`` and a whole frame, envelope and typed data, is one decode.
Field names are Binance's own, single letters included and case-sensitive (``E`` event time,
``T`` trade / transaction time, ``U``/``u``/``pu`` first / final / previous final update id).
Prices, quantities and rates stay the decimal strings Binance sends; unknown fields (``st``,
``ps``, ``ap`` ...) are ignored. Times are Binance's milliseconds here.
"""

from __future__ import annotations

import msgspec

from streaming.venues.binance.wire import PriceLevels, WireInt


class TradeEvent(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="trade"):
    """``<symbol>@trade`` payload; ``X`` is the execution type (``MARKET`` for a trade of the
    order book; ``INSURANCE_FUND``, ``ADL``, ... for a liquidation's fill)."""

    E: WireInt
    T: WireInt
    s: str
    t: WireInt
    p: str
    q: str
    X: str
    m: bool


class BookTickerEvent(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="bookTicker"):
    """``<symbol>@bookTicker`` payload: best bid and ask, with event and transaction times."""

    u: WireInt
    E: WireInt
    T: WireInt
    s: str
    b: str
    B: str
    a: str
    A: str


class MarkPriceEvent(
    msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="markPriceUpdate"
):  # fmt: skip
    """``<symbol>@markPrice`` / ``@markPrice@1s`` payload: mark price ``p``, index price ``i``,
    funding rate ``r`` (signed) and next funding time ``T`` (``P``, the estimated settle price,
    is not read)."""

    E: WireInt
    s: str
    p: str
    r: str
    T: WireInt
    i: str | None = None


class DepthUpdateEvent(msgspec.Struct, frozen=True, gc=False, tag_field="e", tag="depthUpdate"):
    """``<symbol>@depth[@0ms|@100ms|@500ms]`` diff: levels changed between update ids ``U`` and
    ``u``; ``pu`` is the ``u`` of the stream's previous diff (futures chain by it)."""

    E: WireInt
    T: WireInt
    s: str
    U: WireInt
    u: WireInt
    pu: WireInt
    b: PriceLevels
    a: PriceLevels


Event = TradeEvent | BookTickerEvent | MarkPriceEvent | DepthUpdateEvent


class StreamFrame(msgspec.Struct, frozen=True, gc=False):
    """Combined-stream frame ``{"stream": "btcusdt@trade", "data": {...}}``, data typed."""

    stream: str
    data: Event


class StreamEnvelope(msgspec.Struct, frozen=True, gc=False):
    """The same frame with its data left raw: the checked way, to name what is wrong."""

    stream: str
    data: msgspec.Raw
