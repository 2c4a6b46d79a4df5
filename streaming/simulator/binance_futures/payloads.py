"""Binance USD-M futures stream payloads built from the synthetic tape and its order book.

The shapes are those Binance documents for USD-M futures (field names case-sensitive):

    trade           {"e":"trade","E":..,"T":..,"s":..,"t":..,"p":..,"q":..,"X":"MARKET","m":..}
    bookTicker      {"e":"bookTicker","u":..,"E":..,"T":..,"s":..,"b":..,"B":..,"a":..,"A":..}
    depthUpdate     {"e":"depthUpdate","E":..,"T":..,"s":..,"U":..,"u":..,"pu":..,"b":[..],"a":[..]}
    markPriceUpdate {"e":"markPriceUpdate","E":..,"s":..,"p":..,"i":..,"P":..,"r":..,"T":..}

``E`` is the event time and ``T`` the transaction (trade) time, both in ms. Prices and
quantities are rendered as the spot simulator renders them (8 decimals), so the perpetual's
trades carry exactly the spot tape's decimal strings. The perpetual has no liquidation fills:
every trade is a ``MARKET`` trade and trade ids count up by one.
"""

from __future__ import annotations

import msgspec

from streaming.simulator import synthetic_book as book
from streaming.simulator.binance.bulk_format import format_e8
from streaming.simulator.tape import DayTape, Instrument


class _Levels(msgspec.Struct, frozen=True):
    """The changed levels of a spot diff payload, left as the raw JSON arrays."""

    b: msgspec.Raw
    a: msgspec.Raw


_LEVELS_DECODER = msgspec.json.Decoder(_Levels)


def signed_e8(value: int) -> str:
    """A signed 1e-8 integer as an 8-decimal string (``-0.00012000``)."""
    return ("-" if value < 0 else "") + format_e8(abs(value))


def trade_json(tape: DayTape, trade_index: int, event_ms: int) -> bytes:
    """``<sym>@trade`` payload for one fill of the tape."""
    inst = tape.instrument
    maker = "true" if tape.trade_buyer_maker[trade_index] else "false"
    return (
        f'{{"e":"trade","E":{event_ms},"T":{int(tape.trade_time_us[trade_index]) // 1000},'
        f'"s":"{inst.symbol}","t":{tape.first_trade_id + trade_index},'
        f'"p":"{format_e8(int(tape.trade_price_ticks[trade_index]) * inst.tick_e8)}",'
        f'"q":"{format_e8(int(tape.trade_qty_steps[trade_index]) * inst.step_e8)}",'
        f'"X":"MARKET","m":{maker}}}'
    ).encode()


def book_ticker_json(
    inst: Instrument, state: book.BookState, event_ms: int, transact_ms: int
) -> bytes:
    """``<sym>@bookTicker`` payload: the best bid and ask of ``state``."""
    return (
        f'{{"e":"bookTicker","u":{state.update_id},"E":{event_ms},"T":{transact_ms},'
        f'"s":"{inst.symbol}","b":"{format_e8(state.bid_ticks * inst.tick_e8)}",'
        f'"B":"{format_e8(state.bid_steps * inst.step_e8)}",'
        f'"a":"{format_e8(state.ask_ticks * inst.tick_e8)}",'
        f'"A":"{format_e8(state.ask_steps * inst.step_e8)}"}}'
    ).encode()


def depth_update_json(
    inst: Instrument,
    before: book.BookState,
    after: book.BookState,
    event_ms: int,
    transact_ms: int,
) -> bytes:
    """``<sym>@depth...`` diff taking the book from ``before`` to ``after``.

    ``pu`` is ``before``'s update id: the ``u`` of the stream's previous diff, which left the
    book in ``before``. The levels are the spot diff's (:func:`synthetic_book.depth_update_json`).
    """
    levels = _LEVELS_DECODER.decode(book.depth_update_json(inst, before, after, event_ms))
    head = (
        f'{{"e":"depthUpdate","E":{event_ms},"T":{transact_ms},"s":"{inst.symbol}",'
        f'"U":{before.update_id + 1},"u":{after.update_id},"pu":{before.update_id},"b":'
    ).encode()
    return b"".join((head, bytes(levels.b), b',"a":', bytes(levels.a), b"}"))


def mark_price_json(
    symbol: str,
    event_ms: int,
    mark_e8: int,
    index_e8: int,
    funding_rate_e8: int,
    next_funding_ms: int,
) -> bytes:
    """``<sym>@markPrice[@1s]`` payload. ``P``, the estimated settle price, is the index (it
    matters only for delivery contracts' settlement)."""
    index = format_e8(index_e8)
    return (
        f'{{"e":"markPriceUpdate","E":{event_ms},"s":"{symbol}","p":"{format_e8(mark_e8)}",'
        f'"i":"{index}","P":"{index}","r":"{signed_e8(funding_rate_e8)}","T":{next_funding_ms}}}'
    ).encode()
