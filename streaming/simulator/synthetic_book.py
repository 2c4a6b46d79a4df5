"""An order book consistent with the synthetic tape, and Binance payloads built from it.

The book after taker order ``j`` of a day has its best bid at ``order_bid_ticks[j]`` (ask one tick
above) and update id ``first_agg_id + j + 1``, so update ids chain across days. Resting sizes are
a pure function of the price level; the sizes at the top are a function of the update id, leaning
toward the latent drift (the best bid's size × e^{lean/2}, the best ask's × e^{−lean/2}, with
``lean = ±book_lean`` in an up or down episode, see :mod:`streaming.simulator.latent`). A state
carries its top sizes, which makes any snapshot and any diff between two states mutually
consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streaming.simulator.binance.bulk_format import format_e8
from streaming.simulator.tape import DayTape, Instrument

BID, ASK = 0, 1
_MAX_DIFF_LEVELS = 500  # a bigger jump is clipped: the far side of it is left unchanged


@dataclass(frozen=True, slots=True)
class BookState:
    """Top of the book (prices in ticks, sizes in lot steps) and the update id that produced it."""

    bid_ticks: int
    update_id: int
    bid_steps: int
    ask_steps: int

    @property
    def ask_ticks(self) -> int:
        """Best ask: always one tick above the best bid."""
        return self.bid_ticks + 1

    def top(self, side: int) -> int:
        """Best price of ``side`` (BID or ASK) in ticks."""
        return self.bid_ticks if side == BID else self.ask_ticks

    def top_size(self, side: int) -> int:
        """Size at the best price of ``side`` in lot steps."""
        return self.bid_steps if side == BID else self.ask_steps


def book_state(bid_ticks: int, update_id: int, lean: float = 0.0) -> BookState:
    """The state with the top sizes of ``update_id``, the bid's over the ask's leaning by e^lean."""
    bid = max(1, round(top_steps(update_id, BID) * math.exp(0.5 * lean)))
    ask = max(1, round(top_steps(update_id, ASK) * math.exp(-0.5 * lean)))
    return BookState(bid_ticks, update_id, bid, ask)


def state_after(tape: DayTape, order_index: int) -> BookState:
    """Book after order ``order_index`` of the day (-1: the opening book, before any trade)."""
    if order_index < 0:
        return book_state(tape.open_ticks, tape.first_agg_id)
    lean = tape.latent.book_lean * int(tape.order_direction[order_index])
    return book_state(
        int(tape.order_bid_ticks[order_index]), tape.first_agg_id + order_index + 1, lean
    )


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    mixed = (values.astype(np.uint64) * np.uint64(2654435761) + np.uint64(salt)) & np.uint64(
        0xFFFFFFFF
    )
    return mixed ^ (mixed >> np.uint64(13))


def resting_steps(ticks: np.ndarray, side: int) -> np.ndarray:
    """Static resting size (in lot steps) at each price level below the top."""
    h = _mix(ticks, 40503 + side)
    return (1 + h % np.uint64(400)) * (1 + (h >> np.uint64(9)) % np.uint64(20))


def top_steps(update_id: int, side: int) -> int:
    """Size (in lot steps) at the best price before any lean, which changes with every update."""
    h = _mix(np.array([update_id], dtype=np.int64), 7919 + side)
    return int((1 + h % np.uint64(3000))[0])


def _side_levels(state: BookState, side: int, ticks: np.ndarray) -> np.ndarray:
    top = state.top(side)
    present = ticks <= top if side == BID else ticks >= top
    sizes = np.where(present, resting_steps(ticks, side), 0).astype(np.int64)
    sizes[ticks == top] = state.top_size(side)
    return sizes


def _levels_json(inst: Instrument, ticks: np.ndarray, sizes: np.ndarray) -> str:
    return ",".join(
        f'["{format_e8(int(t) * inst.tick_e8)}","{format_e8(int(q) * inst.step_e8)}"]'
        for t, q in zip(ticks, sizes, strict=True)
    )


def snapshot_json(inst: Instrument, state: BookState, limit: int) -> bytes:
    """REST /api/v3/depth body for the given book state."""
    bid_ticks = np.arange(state.bid_ticks, max(0, state.bid_ticks - limit), -1, dtype=np.int64)
    ask_ticks = np.arange(state.ask_ticks, state.ask_ticks + limit, dtype=np.int64)
    bids, asks = (
        _levels_json(inst, ticks, _side_levels(state, side, ticks))
        for side, ticks in ((BID, bid_ticks), (ASK, ask_ticks))
    )
    return f'{{"lastUpdateId":{state.update_id},"bids":[{bids}],"asks":[{asks}]}}'.encode()


def _changed(before: BookState, after: BookState, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels of ``side`` whose size differs between the states, best first (0 = removed)."""
    low, high = sorted((before.top(side), after.top(side)))
    if high - low > _MAX_DIFF_LEVELS:
        low, high = (
            (high - _MAX_DIFF_LEVELS, high) if side == BID else (low, low + _MAX_DIFF_LEVELS)
        )
    low = max(low, 1)
    ticks = np.arange(low, high + 1, dtype=np.int64)
    old = _side_levels(before, side, ticks)
    new = _side_levels(after, side, ticks)
    keep = old != new
    ticks, sizes = ticks[keep], new[keep]
    return (ticks[::-1], sizes[::-1]) if side == BID else (ticks, sizes)


def depth_update_json(
    inst: Instrument, before: BookState, after: BookState, event_ms: int
) -> bytes:
    """``<sym>@depth@100ms`` payload taking the book from ``before`` to ``after``."""
    bids = _levels_json(inst, *_changed(before, after, BID))
    asks = _levels_json(inst, *_changed(before, after, ASK))
    return (
        f'{{"e":"depthUpdate","E":{event_ms},"s":"{inst.symbol}","U":{before.update_id + 1},'
        f'"u":{after.update_id},"b":[{bids}],"a":[{asks}]}}'
    ).encode()


def book_ticker_json(inst: Instrument, state: BookState) -> bytes:
    """``<sym>@bookTicker`` payload (no event type or time, as Binance spot sends it)."""
    return (
        f'{{"u":{state.update_id},"s":"{inst.symbol}",'
        f'"b":"{format_e8(state.bid_ticks * inst.tick_e8)}",'
        f'"B":"{format_e8(state.bid_steps * inst.step_e8)}",'
        f'"a":"{format_e8(state.ask_ticks * inst.tick_e8)}",'
        f'"A":"{format_e8(state.ask_steps * inst.step_e8)}"}}'
    ).encode()


def trade_json(tape: DayTape, trade_index: int, event_ms: int) -> bytes:
    """``<sym>@trade`` payload for one fill."""
    inst = tape.instrument
    maker = "true" if tape.trade_buyer_maker[trade_index] else "false"
    return (
        f'{{"e":"trade","E":{event_ms},"s":"{inst.symbol}","t":{tape.first_trade_id + trade_index},'
        f'"p":"{format_e8(int(tape.trade_price_ticks[trade_index]) * inst.tick_e8)}",'
        f'"q":"{format_e8(int(tape.trade_qty_steps[trade_index]) * inst.step_e8)}",'
        f'"T":{int(tape.trade_time_us[trade_index]) // 1000},"m":{maker},"M":true}}'
    ).encode()


def agg_trade_json(tape: DayTape, order_index: int, event_ms: int) -> bytes:
    """``<sym>@aggTrade`` payload for one taker order."""
    inst = tape.instrument
    first = int(tape.order_first_trade[order_index])
    last = first + int(tape.order_fill_count[order_index]) - 1
    maker = "true" if tape.trade_buyer_maker[first] else "false"
    return (
        f'{{"e":"aggTrade","E":{event_ms},"s":"{inst.symbol}",'
        f'"a":{tape.first_agg_id + order_index},'
        f'"p":"{format_e8(int(tape.trade_price_ticks[first]) * inst.tick_e8)}",'
        f'"q":"{format_e8(int(tape.order_qty_steps[order_index]) * inst.step_e8)}",'
        f'"f":{tape.first_trade_id + first},"l":{tape.first_trade_id + last},'
        f'"T":{int(tape.trade_time_us[first]) // 1000},"m":{maker},"M":true}}'
    ).encode()
