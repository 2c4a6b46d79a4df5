"""The fast way through a combined-stream frame: one decode, and decimals checked by layout.

:class:`FastFrames` decodes a whole frame, envelope and typed data, in one call: the streams seen
so far are a msgspec union tagged by the ``stream`` field, each with its data's type. Each record
is then built with its decimals checked against the stream's byte layout: Binance sends every
frame of a stream in one layout, and once the frame's bytes with their digits taken out equal it,
every decimal in the frame is digits around one dot; only an empty side (``".5"``, ``"5."``) is
left to rule out. That is a few C-level byte operations where a regex over the decimals costs
more than the decode itself. A frame the fast way doubts (a stream not in the union, any decode
failure, another layout: spaces, other key order, a decimal without a dot) is left to
:func:`streaming.venues.binance.parse.parse_stream_frame`'s checked way, so which frames are
accepted, and the errors of those that are not, do not depend on the way taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import msgspec

from streaming.venues.binance.records import AggTrade, BookTicker, DepthUpdate, Trade
from streaming.venues.binance.wire import (
    AggTradeEvent,
    BookTickerEvent,
    DepthUpdateEvent,
    TradeEvent,
)

MS_TO_NS = 1_000_000
# Each stream added rebuilds the union's decoder; names come off the wire, so they are capped.
MAX_FAST_STREAMS = 64
_DIGITS = b"0123456789"
# Binance's frames with their digits taken out; %s: the stream name, then the symbol.
_TRADE = (
    b'{"stream":"%s","data":{"e":"trade","E":,"s":"%s","t":,"p":".","q":".","T":,"m":%s,"M":%s}}'
)
_AGG_TRADE = (
    b'{"stream":"%s","data":{"e":"aggTrade","E":,"s":"%s","a":,"p":".","q":".","f":,"l":,"T":,'
    b'"m":%s,"M":%s}}'
)
_BOOK_TICKER = b'{"stream":"%s","data":{"u":,"s":"%s","b":".","B":".","a":".","A":"."}}'
_DEPTH_HEAD = b'{"stream":"%s","data":{"e":"depthUpdate","E":,"s":"%s","U":,"u":,"b":['
_DEPTH_MID, _DEPTH_TAIL, _DEPTH_LEVEL = b'],"a":[', b"]}}", b'[".","."],'
_BOOLS = (b"true", b"false")
_QUOTE_AS_DOT = bytes.maketrans(b'"', b".")

# A fast builder: (the frame's data, receive_ns, the frame, its layouts) -> record, None in doubt.
FastBuild = Callable[[Any, int, bytes, Any], Any]
# The full check: (the frame's data, receive_ns, the frame, field path prefix) -> record.
CheckedBuild = Callable[[Any, int, bytes, str], Any]
# Per stream: (fast builder, the layouts it checks against, full check)
FastRoute = tuple[FastBuild, Any, CheckedBuild]


def _layouts(template: bytes, stream: str, *flags: tuple[bytes, ...]) -> tuple[bytes, ...]:
    names = (stream.encode(), stream.partition("@")[0].upper().encode())
    combos: list[tuple[bytes, ...]] = [()]
    for values in flags:  # every combination of the boolean fields' values
        combos = [(*combo, value) for combo in combos for value in values]
    return tuple((template % (*names, *combo)).translate(None, _DIGITS) for combo in combos)


def _trade(event: TradeEvent, receive_ns: int, raw: bytes, layouts: Any) -> Trade | None:
    p, q = event.p, event.q
    # The layout test goes first: it rules out empty values before they are indexed.
    if raw.translate(None, _DIGITS) not in layouts or (
        p[0] == "." or p[-1] == "." or q[0] == "." or q[-1] == "."
    ):
        return None
    return Trade(
        event.s, event.t, p, q, event.m, event.T * MS_TO_NS, event.E * MS_TO_NS, receive_ns
    )  # fmt: skip


def _agg_trade(event: AggTradeEvent, receive_ns: int, raw: bytes, layouts: Any) -> AggTrade | None:
    p, q = event.p, event.q
    if raw.translate(None, _DIGITS) not in layouts or (
        p[0] == "." or p[-1] == "." or q[0] == "." or q[-1] == "."
    ):
        return None
    return AggTrade(
        event.s, event.a, p, q, event.f, event.l, event.m, event.T * MS_TO_NS,
        event.E * MS_TO_NS, receive_ns,
    )  # fmt: skip


def _book_ticker(
    event: BookTickerEvent, receive_ns: int, raw: bytes, layouts: Any
) -> BookTicker | None:
    b, B, a, A = event.b, event.B, event.a, event.A
    if raw.translate(None, _DIGITS) != layouts[0] or (
        b[0] == "." or b[-1] == "." or B[0] == "." or B[-1] == "."
        or a[0] == "." or a[-1] == "." or A[0] == "." or A[-1] == "."
    ):  # fmt: skip
        return None
    return BookTicker(event.s, event.u, b, B, a, A, receive_ns, None)  # the layout has no E


def _depth_update(
    event: DepthUpdateEvent, receive_ns: int, raw: bytes, head: Any
) -> DepthUpdate | None:
    bids, asks = event.b, event.a
    layout = b"".join((
        head, (_DEPTH_LEVEL * len(bids))[:-1], _DEPTH_MID, (_DEPTH_LEVEL * len(asks))[:-1],
        _DEPTH_TAIL,
    ))  # fmt: skip
    # With quotes read as dots, a decimal with an empty side shows two dots in a row (".5" as
    # "..5"), and nothing else in this layout does: one scan instead of one per side.
    if raw.translate(None, _DIGITS) != layout or b".." in raw.translate(_QUOTE_AS_DOT):
        return None
    return DepthUpdate(event.s, event.U, event.u, bids, asks, event.E * MS_TO_NS, receive_ns)


# Per data type: its fast builder, and the layouts of a stream's frames by the stream's name.
_BY_EVENT: dict[type, tuple[FastBuild, Callable[[str], Any]]] = {
    TradeEvent: (_trade, lambda stream: _layouts(_TRADE, stream, _BOOLS, _BOOLS)),
    AggTradeEvent: (_agg_trade, lambda stream: _layouts(_AGG_TRADE, stream, _BOOLS, _BOOLS)),
    BookTickerEvent: (_book_ticker, lambda stream: _layouts(_BOOK_TICKER, stream)),
    DepthUpdateEvent: (_depth_update, lambda stream: _layouts(_DEPTH_HEAD, stream)[0]),
}


def _tagged(stream: str, event_type: type, route: FastRoute | None) -> type:
    """A frame of ``stream``, its data typed; the class carries its route as ``route``."""
    return msgspec.defstruct(
        "StreamFrame", [("data", event_type)], tag_field="stream", tag=stream, frozen=True,
        gc=False, namespace={"route": route},
    )  # fmt: skip


class FastFrames:
    """The streams learned so far: ``decoder`` decodes a frame of any of them in one call (None
    before the first) into a struct whose ``route`` says how to build its record.
    """

    def __init__(self) -> None:
        # A union of one type would take frames without a "stream" too: a name no stream has
        # keeps it a union. Its frames, if any, go the checked way (route None).
        self._frames: list[type] = [_tagged("", BookTickerEvent, None)]
        self.decoder: msgspec.json.Decoder[Any] | None = None
        self._streams: set[str] = set()

    def learn(self, stream: str, event_type: type, checked: CheckedBuild) -> None:
        """Take ``stream``'s frames the fast way from now on (a no-op for streams already
        learned, past MAX_FAST_STREAMS, or of data types without a fast builder: klines, rare,
        whose wire type checks their decimals field by field anyway)."""
        known = _BY_EVENT.get(event_type)
        if known is None or stream in self._streams or len(self._streams) >= MAX_FAST_STREAMS:
            return
        build, layouts = known
        self._frames.append(_tagged(stream, event_type, (build, layouts(stream), checked)))
        self._streams.add(stream)
        self.decoder = msgspec.json.Decoder(Union[tuple(self._frames)])  # type: ignore[misc]  # noqa: UP007
