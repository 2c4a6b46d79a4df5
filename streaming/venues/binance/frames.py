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

import functools
import operator
from collections.abc import Callable
from typing import Any

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

# The record of a decoded frame, a method of its struct: (frame, receive_ns, frame's bytes).
FastBuild = Callable[[Any, int, bytes], Any]
# The full check: (the frame's data, receive_ns, the frame's bytes, field path prefix) -> record.
CheckedBuild = Callable[[Any, int, bytes, str], Any]


def _layouts(template: bytes, stream: str, *flags: tuple[bytes, ...]) -> tuple[bytes, ...]:
    names = (stream.encode(), stream.partition("@")[0].upper().encode())
    combos: list[tuple[bytes, ...]] = [()]
    for values in flags:  # every combination of the boolean fields' values
        combos = [(*combo, value) for combo in combos for value in values]
    return tuple((template % (*names, *combo)).translate(None, _DIGITS) for combo in combos)


# The builders below are the methods ``build`` of the frame structs: ``frame.layouts`` and
# ``frame.checked`` are their stream's layouts and full check.
def _trade(frame: Any, receive_ns: int, raw: bytes) -> Trade:
    event: TradeEvent = frame.data
    p, q = event.p, event.q
    # The layout test goes first: it rules out empty values before they are indexed.
    if raw.translate(None, _DIGITS) not in frame.layouts or (
        p[0] == "." or p[-1] == "." or q[0] == "." or q[-1] == "."
    ):
        return frame.checked(event, receive_ns, raw, "data")
    return Trade(
        event.s, event.t, p, q, event.m, event.T * MS_TO_NS, event.E * MS_TO_NS, receive_ns
    )  # fmt: skip


def _agg_trade(frame: Any, receive_ns: int, raw: bytes) -> AggTrade:
    event: AggTradeEvent = frame.data
    p, q = event.p, event.q
    if raw.translate(None, _DIGITS) not in frame.layouts or (
        p[0] == "." or p[-1] == "." or q[0] == "." or q[-1] == "."
    ):
        return frame.checked(event, receive_ns, raw, "data")
    return AggTrade(
        event.s, event.a, p, q, event.f, event.l, event.m, event.T * MS_TO_NS,
        event.E * MS_TO_NS, receive_ns,
    )  # fmt: skip


def _book_ticker(frame: Any, receive_ns: int, raw: bytes) -> BookTicker:
    event: BookTickerEvent = frame.data
    b, B, a, A = event.b, event.B, event.a, event.A
    if raw.translate(None, _DIGITS) != frame.layouts[0] or (
        b[0] == "." or b[-1] == "." or B[0] == "." or B[-1] == "."
        or a[0] == "." or a[-1] == "." or A[0] == "." or A[-1] == "."
    ):  # fmt: skip
        return frame.checked(event, receive_ns, raw, "data")
    return BookTicker(event.s, event.u, b, B, a, A, receive_ns, None)  # the layout has no E


def _depth_update(frame: Any, receive_ns: int, raw: bytes) -> DepthUpdate:
    event: DepthUpdateEvent = frame.data
    bids, asks = event.b, event.a
    layout = b"".join((
        frame.layouts[0], (_DEPTH_LEVEL * len(bids))[:-1], _DEPTH_MID,
        (_DEPTH_LEVEL * len(asks))[:-1], _DEPTH_TAIL,
    ))  # fmt: skip
    # With quotes read as dots, a decimal with an empty side shows two dots in a row (".5" as
    # "..5"), and nothing else in this layout does: one scan instead of one per side.
    if raw.translate(None, _DIGITS) != layout or b".." in raw.translate(_QUOTE_AS_DOT):
        return frame.checked(event, receive_ns, raw, "data")
    return DepthUpdate(event.s, event.U, event.u, bids, asks, event.E * MS_TO_NS, receive_ns)


# Per data type: its builder, and the layouts of a stream's frames by the stream's name.
_BY_EVENT: dict[type, tuple[FastBuild, Callable[[str], tuple[bytes, ...]]]] = {
    TradeEvent: (_trade, lambda stream: _layouts(_TRADE, stream, _BOOLS, _BOOLS)),
    AggTradeEvent: (_agg_trade, lambda stream: _layouts(_AGG_TRADE, stream, _BOOLS, _BOOLS)),
    BookTickerEvent: (_book_ticker, lambda stream: _layouts(_BOOK_TICKER, stream)),
    DepthUpdateEvent: (_depth_update, lambda stream: _layouts(_DEPTH_HEAD, stream)),
}


def _tagged(stream: str, event_type: type, build: FastBuild, **attributes: Any) -> type:
    """The struct of a frame of ``stream``, its data typed, its record made by ``build()``."""
    return msgspec.defstruct(
        "StreamFrame", [("data", event_type)], tag_field="stream", tag=stream, frozen=True,
        gc=False, namespace={"build": build, **attributes},
    )  # fmt: skip


class FastFrames:
    """The streams learned so far: ``decoder`` decodes a frame of any of them in one call into a
    struct whose ``build(receive_ns, raw)`` gives its record.

    ``checked_frame(raw, receive_ns)`` is the parser's checked way through a whole frame.
    """

    def __init__(self, checked_frame: Callable[[bytes, int], Any]) -> None:
        # A frame of no stream learned (with a "stream" named "", or none: one struct alone is no
        # union, and takes a frame without its tag field) goes the checked way; next to the
        # streams learned it keeps the decoder a union.
        def checked(frame: Any, receive_ns: int, raw: bytes) -> Any:
            return checked_frame(raw, receive_ns)

        self._frames: list[type] = [_tagged("", BookTickerEvent, checked)]
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self._frames[0])
        self._streams: set[str] = set()

    def learn(self, stream: str, event_type: type, checked: CheckedBuild) -> None:
        """Take ``stream``'s frames the fast way from now on (a no-op for streams already
        learned, past MAX_FAST_STREAMS, or of data types without a fast builder: klines, rare,
        whose wire type checks their decimals field by field anyway)."""
        known = _BY_EVENT.get(event_type)
        if known is None or stream in self._streams or len(self._streams) >= MAX_FAST_STREAMS:
            return
        build, layouts = known
        self._frames.append(
            _tagged(
                stream, event_type, build, layouts=layouts(stream), checked=staticmethod(checked)
            )
        )
        self._streams.add(stream)
        self.decoder = msgspec.json.Decoder(functools.reduce(operator.or_, self._frames))
