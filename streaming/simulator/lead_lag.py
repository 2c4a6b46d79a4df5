"""The planted lead-lag: one latent market that each venue shows with its own delay.

Every venue of the simulator trades the one synthetic tape (:mod:`streaming.simulator.tape`):
the same trade ids, prices, sizes and sides. A venue with delay ``d`` shows the tape as it stood
``d`` seconds ago, stamped with the time it shows it: the trade of tape time ``t`` reaches the
venue at ``t + d`` and every time the venue sends for it (trade time, event time, the time of
the book it leaves, the rolling 24 h window) is ``t + d``. So the same trades and the same price
path arrive at a delayed venue ``d`` later in event time::

    price_V(t) = price_BINANCE(t − d_V)        trade id k at V: time_BINANCE(k) + d_V

Binance spot leads; the delayed venues follow. :data:`DEFAULT_VENUE_DELAYS_S`:

=================== ======= ==============================================================
venue               delay   shows
=================== ======= ==============================================================
``binance``         0       the tape itself; its REST history and daily bulk files too
``binance_futures`` 0       the tape as the perpetual (the funding model reads it as shown)
``coinbase``        2 s     the tape 2 s late (``BTC-USD``: ``BTCUSDT``'s trades)
``kraken``          3 s     the tape 3 s late (``BTC/USD``: ``BTCUSDT``'s trades)
=================== ======= ==============================================================

What the cross-venue features (:mod:`trading_assets.lib.features.cross_venue`) can find, with a
follower as the own instrument and Binance spot as the reference, on a tape whose price is a
martingale (``--edge 0``): the follower's return over the next ``d`` seconds is the leader's
over the last ``d``, so ``lead_ret_{w}s`` (the leader's return over ``w``) shares ``d`` of its
``w`` seconds with it, a correlation of about ``√(d/w)`` (0.45 for Coinbase at ``w`` = 10 s);
``basis_bps`` is −1e4 times that return itself (the move the follower has still to make),
and ``lead_gap_{w}s`` = (``basis_bps`` ``w`` seconds ago − ``basis_bps`` now) / 1e4. With
every delay 0 the venues show one price path: the basis and the gap are 0 and ``lead_ret`` is
the own momentum, which predicts nothing on a martingale. Both are measured by
``tests/integration/test_simulator_lead_lag.py``.

Midnight: a delayed venue shows day ``D``'s tape until its own clock (the server's clock minus
``d``) passes midnight, so the last ``d`` seconds of ``D`` reach it stamped in ``D + 1``; no
trade is skipped or repeated and trade ids stay contiguous. Snapshots sent at subscription
(trades, book, ticker) are those of the delayed clock too.

Set on :class:`~streaming.simulator.server.SimulatorServer` (``venue_delays_s``) and on the
command line (``--venue-delay coinbase=2``, ``--no-lead-lag``). Binance spot cannot be
delayed: its REST history and bulk files are Binance spot's and match its live stream.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from streaming.simulator.tape import DayTape, day_of_us

TapeLoader = Callable[[str, dt.date], Awaitable[DayTape]]
"""Loads the tape of a symbol and day (off the event loop)."""

LEADER = "binance"
"""The venue that shows the tape as it happens."""
DEFAULT_VENUE_DELAYS_S: Mapping[str, float] = MappingProxyType(
    {LEADER: 0.0, "binance_futures": 0.0, "coinbase": 2.0, "kraken": 3.0}
)
"""Each venue's delay behind the tape, in seconds (see the module)."""
VENUES: tuple[str, ...] = tuple(DEFAULT_VENUE_DELAYS_S)
US_PER_SECOND = 1_000_000
_CACHED_TAPES = 8


def venue_delays_us(delays_s: Mapping[str, float] | None = None) -> dict[str, int]:
    """Every venue's delay in whole µs: the defaults for None, else ``delays_s`` (names as
    :data:`VENUES`, any case; a venue not named is not delayed). Refuses an unknown venue, a
    negative or non-finite delay, and a delayed Binance spot."""
    given = DEFAULT_VENUE_DELAYS_S if delays_s is None else delays_s
    delays = dict.fromkeys(VENUES, 0)
    for name, seconds in given.items():
        venue = name.strip().lower()
        if venue not in delays:
            raise ValueError(f"unknown venue {name!r}: the venues are {', '.join(VENUES)}")
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"the delay of {venue} must be ≥ 0 seconds, got {seconds}")
        delays[venue] = round(seconds * US_PER_SECOND)
    if delays[LEADER]:
        raise ValueError("Binance spot leads and cannot be delayed (its REST and bulk files)")
    return delays


def parse_venue_delay(text: str) -> tuple[str, float]:
    """``VENUE=SECONDS`` (``coinbase=2``) as (venue, seconds), as the command line gives it."""
    name, sep, seconds = text.partition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = None
    if not sep or value is None:
        raise ValueError(f"expected VENUE=SECONDS, got {text!r}")
    venue_delays_us({name: value})  # an unknown venue or a bad delay is refused here
    return name.strip().lower(), value


def venue_day(now_us: int, delay_us: int) -> dt.date:
    """The day whose tape a venue ``delay_us`` behind shows at ``now_us`` (the server's clock)."""
    return day_of_us(now_us - delay_us)


def delayed_tape(tape: DayTape, delay_us: int) -> DayTape:
    """``tape`` as a venue ``delay_us`` behind shows it: every trade time later by the delay,
    all else (day, ids, prices, sizes, sides, book) the same. Its ``latent`` stays the
    shared tape's, in the shared tape's time."""
    if not delay_us:
        return tape
    return replace(tape, trade_time_us=tape.trade_time_us + delay_us)


def delayed_loader(load: TapeLoader, delay_us: int) -> TapeLoader:
    """A loader of the tapes as a venue ``delay_us`` behind shows them (``load`` itself for no
    delay); the last few are kept, so the cursors of one venue share each day's tape."""
    if not delay_us:
        return load
    cache: OrderedDict[tuple[str, dt.date], DayTape] = OrderedDict()

    async def load_delayed(symbol: str, day: dt.date) -> DayTape:
        key = (symbol, day)
        tape = cache.get(key)
        if tape is None:
            tape = cache[key] = delayed_tape(await load(symbol, day), delay_us)
            while len(cache) > _CACHED_TAPES:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return tape

    return load_delayed
