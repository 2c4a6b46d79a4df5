"""Coinbase Advanced Trade WebSocket messages rendered from the synthetic market.

Every market-data frame has one envelope, ``{"channel", "timestamp", "sequence_num", "events"}``
in that order (what ``wss://advanced-trade-ws.coinbase.com`` sends, without ``client_id``); the
events of each channel are rendered here as JSON text, and :func:`frame` wraps them once the
connection has numbered them. Coinbase's conventions, kept exactly:

- decimals are plain strings without trailing zeros (``"65083.67"``, ``"0.0015885"``,
  ``"126296"``): :func:`decimal_e8`;
- times are RFC 3339 in UTC with up to nine fraction digits, trailing zeros dropped (Go's
  ``RFC3339Nano``: ``2026-08-09T21:05:38.50436Z``): :func:`rfc3339_nano`;
- trade ids are digit strings, ``side`` of a trade is the maker's (``BUY``: the resting order
  bought, a taker sold into the bid), trades of one event are listed newest first;
- level2 levels are ``{"side": "bid"|"offer", "event_time", "price_level", "new_quantity"}``
  with absolute quantities, ``"0"`` removing a level, best level first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from streaming.simulator.synthetic_book import ASK, BID, BookState, resting_steps
from streaming.simulator.tape import E8, DayTape, Instrument

NS_PER_S = 1_000_000_000
EventType = Literal["snapshot", "update"]


# -- numbers and times ----------------------------------------------------------------------------
def decimal_e8(value: int) -> str:
    """A non-negative multiple of 1e-8 as Coinbase writes decimals: ``65083.67``, ``1``, ``0``."""
    whole, fraction = divmod(int(value), E8)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:08d}".rstrip("0")


_SECOND_TEXT: dict[int, str] = {}  # whole seconds since the epoch -> "YYYY-MM-DDTHH:MM:SS"


def _second_text(seconds: int) -> str:
    text = _SECOND_TEXT.get(seconds)
    if text is None:
        if len(_SECOND_TEXT) >= 4096:  # a cache of the seconds being rendered, kept small
            _SECOND_TEXT.clear()
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
        text = _SECOND_TEXT[seconds] = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text


def _fraction(nanos: int) -> str:
    return f".{nanos:09d}".rstrip("0") if nanos else ""


def rfc3339_nano(ns: int) -> str:
    """ns since the epoch as Go's ``RFC3339Nano`` in UTC: ``2026-08-09T21:05:48.228568804Z``."""
    seconds, nanos = divmod(int(ns), NS_PER_S)
    return f"{_second_text(seconds)}{_fraction(nanos)}Z"


def go_time_string(ns: int, monotonic_ns: int) -> str:
    """A heartbeat's ``current_time``: Go's ``time.Time.String()`` of a UTC time carrying a
    monotonic reading, ``2026-08-09 21:05:48.854840045 +0000 UTC m=+41691.260485341``."""
    seconds, nanos = divmod(int(ns), NS_PER_S)
    wall = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    mono_s, mono_ns = divmod(monotonic_ns, NS_PER_S)
    return f"{wall}{_fraction(nanos)} +0000 UTC m=+{mono_s}.{mono_ns:09d}"


# -- the envelope ---------------------------------------------------------------------------------
def frame(channel: str, timestamp_ns: int, sequence: int, events: str) -> str:
    """One frame: ``events`` (a JSON array) of ``channel``, sent at ``timestamp_ns``."""
    return (
        f'{{"channel":"{channel}","timestamp":"{rfc3339_nano(timestamp_ns)}",'
        f'"sequence_num":{sequence},"events":{events}}}'
    )


def error_message(message: str, reason: str) -> str:
    """What Coinbase answers a subscribe message it refuses (no channel, no sequence number)."""
    body = {"type": "error", "message": message, "reason": reason}
    return json.dumps(body, separators=(",", ":"))


# -- market_trades --------------------------------------------------------------------------------
def trade_json(product_id: str, tape: DayTape, index: int) -> str:
    """One trade of the tape (its fill ``index``) as a ``market_trades`` trade."""
    inst = tape.instrument
    side = "BUY" if tape.trade_buyer_maker[index] else "SELL"
    return (
        f'{{"product_id":"{product_id}","trade_id":"{tape.first_trade_id + index}",'
        f'"price":"{decimal_e8(int(tape.trade_price_ticks[index]) * inst.tick_e8)}",'
        f'"size":"{decimal_e8(int(tape.trade_qty_steps[index]) * inst.step_e8)}",'
        f'"time":"{rfc3339_nano(int(tape.trade_time_us[index]) * 1000)}","side":"{side}"}}'
    )


def trades_events(kind: EventType, newest_first: Iterable[str]) -> str:
    """A ``market_trades`` frame's events: one event holding the trades (rendered, newest first)."""
    return f'[{{"type":"{kind}","trades":[{",".join(newest_first)}]}}]'


# -- ticker ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DayStats:
    """A product's rolling 24 h statistics, prices in ticks and the volume in lot steps."""

    last_ticks: int  # the last trade's price
    open_ticks: int  # the price 24 h before (the last trade at or before then)
    low_ticks: int
    high_ticks: int
    volume_steps: int  # base quantity traded in the last 24 h


def _percent(value: float) -> str:
    text = f"{value:.14f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def ticker_events(
    kind: EventType,
    product_id: str,
    inst: Instrument,
    state: BookState,
    stats: DayStats,
) -> str:
    """A ``ticker`` frame's events: the last price, the 24 h statistics and the best bid and ask.

    The synthetic market keeps no year of statistics, so the 52-week low and high are the
    24 h ones (fields Coinbase sends; nothing here reads them)."""
    tick, step = inst.tick_e8, inst.step_e8
    change = (
        (stats.last_ticks - stats.open_ticks) / stats.open_ticks * 100 if stats.open_ticks else 0
    )
    return (
        f'[{{"type":"{kind}","tickers":[{{"type":"ticker","product_id":"{product_id}",'
        f'"price":"{decimal_e8(stats.last_ticks * tick)}",'
        f'"volume_24_h":"{decimal_e8(stats.volume_steps * step)}",'
        f'"low_24_h":"{decimal_e8(stats.low_ticks * tick)}",'
        f'"high_24_h":"{decimal_e8(stats.high_ticks * tick)}",'
        f'"low_52_w":"{decimal_e8(stats.low_ticks * tick)}",'
        f'"high_52_w":"{decimal_e8(stats.high_ticks * tick)}",'
        f'"price_percent_chg_24_h":"{_percent(change)}",'
        f'"best_bid":"{decimal_e8(state.bid_ticks * tick)}",'
        f'"best_ask":"{decimal_e8(state.ask_ticks * tick)}",'
        f'"best_bid_quantity":"{decimal_e8(state.bid_steps * step)}",'
        f'"best_ask_quantity":"{decimal_e8(state.ask_steps * step)}"}}]}}]'
    )


# -- level2 ---------------------------------------------------------------------------------------
SIDE_NAMES = ("bid", "offer")  # Coinbase's names of BID and ASK


def side_sizes(state: BookState, side: int, ticks: np.ndarray) -> np.ndarray:
    """Resting size (lot steps, 0 where the side has no level) of ``side`` at each price."""
    top = state.top(side)
    present = ticks <= top if side == BID else ticks >= top
    sizes = np.where(present, resting_steps(ticks, side), 0).astype(np.int64)
    sizes[ticks == top] = state.top_size(side)
    return sizes


def book_levels(state: BookState, side: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``depth`` levels of ``side`` (prices in ticks, sizes in steps), best first."""
    if side == BID:
        ticks = np.arange(state.bid_ticks, max(0, state.bid_ticks - depth), -1, dtype=np.int64)
    else:
        ticks = np.arange(state.ask_ticks, state.ask_ticks + depth, dtype=np.int64)
    return ticks, side_sizes(state, side, ticks)


def changed_levels(before: BookState, after: BookState, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The levels of ``side`` whose size differs between the states, best first (0: removed).

    Resting sizes below the top are a function of the price alone, so only the levels between
    the two best prices (both included) can differ.
    """
    low, high = sorted((before.top(side), after.top(side)))
    ticks = np.arange(max(low, 1), high + 1, dtype=np.int64)
    new = side_sizes(after, side, ticks)
    keep = side_sizes(before, side, ticks) != new
    ticks, sizes = ticks[keep], new[keep]
    return (ticks[::-1], sizes[::-1]) if side == BID else (ticks, sizes)


def _levels_json(
    inst: Instrument, side: int, event_time: str, levels: tuple[np.ndarray, np.ndarray]
) -> list[str]:
    name = SIDE_NAMES[side]
    return [
        f'{{"side":"{name}","event_time":"{event_time}",'
        f'"price_level":"{decimal_e8(int(t) * inst.tick_e8)}",'
        f'"new_quantity":"{decimal_e8(int(q) * inst.step_e8)}"}}'
        for t, q in zip(*levels, strict=True)
    ]


def level2_events(
    kind: EventType,
    product_id: str,
    inst: Instrument,
    event_ns: int,
    bids: tuple[np.ndarray, np.ndarray],
    asks: tuple[np.ndarray, np.ndarray],
) -> str:
    """A ``l2_data`` frame's events: the levels of one product, bids then offers."""
    event_time = rfc3339_nano(event_ns)
    updates = _levels_json(inst, BID, event_time, bids) + _levels_json(inst, ASK, event_time, asks)
    return f'[{{"type":"{kind}","product_id":"{product_id}","updates":[{",".join(updates)}]}}]'


# -- subscriptions and heartbeats -----------------------------------------------------------------
def subscriptions_events(subscriptions: Mapping[str, Sequence[str]]) -> str:
    """A ``subscriptions`` frame's events: every channel now subscribed (names sorted, as
    Coinbase's encoder orders them) and its products; ``heartbeats`` lists ``["heartbeats"]``."""
    listed = {channel: list(subscriptions[channel]) for channel in sorted(subscriptions)}
    return json.dumps([{"subscriptions": listed}], separators=(",", ":"))


def heartbeat_events(now_ns: int, monotonic_ns: int, counter: int) -> str:
    """A ``heartbeats`` frame's events."""
    current = go_time_string(now_ns, monotonic_ns)
    return f'[{{"current_time":"{current}","heartbeat_counter":{counter}}}]'
