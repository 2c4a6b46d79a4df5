"""Taker order signs and the trade-price path of a synthetic day, in integer ticks.

Signs: an uninformed Markov chain (a flip with probability ``SIGN_FLIP_PROBABILITY`` between
orders, so runs are longer than coin flips) overridden, during a latent drift episode, by
informed orders that trade in the episode's direction.

Prices: the *trade* price is the martingale, not the mid. Each order moves it by the stochastic
rounding of ``level × (noise + drift)`` ticks (``floor(x + U)``, ``U`` uniform, whose mean is
exactly ``x``), where the noise is heavy tailed, volatility-clustered, and carries the price
impact of the *unexpected* part of the uninformed flow, ``κ (u_j − ρ u_{j−1})`` (``ρ`` the chain's
sign autocorrelation): its mean given everything before the order is zero, so persistent flow
moves prices without making them predictable. Buys print at the ask and sells at the bid, and the
book is derived from the print (bid = price − 1 tick after a buy, = price after a sell), so there
is no bid-ask bounce in trade prices.

The day must end on the next day's opening bid, which the per-symbol schedule fixes in advance.
The gap between the free path's end and that target is closed by unit steps placed at random
orders with probability proportional to each order's noise variance: the integer form of a
Brownian bridge in variance time. When the target is drawn with the day's variance (as the
schedule does), the bridged path has the law of the free one, so it stays a random walk to
anyone who does not know the target.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SIGN_FLIP_PROBABILITY = 0.2
SIGN_PERSISTENCE = 1.0 - 2.0 * SIGN_FLIP_PROBABILITY  # E[u_j | u_{j-1}] = ρ u_{j-1}
IMPACT = 0.3  # price impact of one unexpected unit of flow, in per-order noise units
# t(4) scaled to unit variance plus the impact term, scaled back to unit variance.
_SHOCK_SCALE = 1.0 / math.sqrt(1.0 + IMPACT**2 * (1.0 - SIGN_PERSISTENCE**2))

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def taker_signs(
    rng: np.random.Generator,
    orders: int,
    direction: npt.NDArray[np.int8],
    informed_share: float,
) -> tuple[Ints, Floats, npt.NDArray[np.bool_]]:
    """Sign of every taker order (+1 buy, −1 sell), the uninformed flow's surprise, and which
    orders are informed.

    ``direction``: the latent drift's sign at each order (0 when quiet); in an episode an order
    is informed with probability ``informed_share`` and then trades in that direction.
    """
    flips = rng.random(orders) < SIGN_FLIP_PROBABILITY
    start = 1 if rng.random() < 0.5 else -1
    uninformed = np.where(np.cumsum(flips) % 2 == 0, start, -start).astype(np.int64)
    informed = (direction != 0) & (rng.random(orders) < informed_share)
    signs = np.where(informed, direction.astype(np.int64), uninformed)
    expected = SIGN_PERSISTENCE * np.concatenate([[0.0], uninformed[:-1]])
    return signs, uninformed - expected, informed


def noise_shocks(rng: np.random.Generator, surprise: Floats) -> Floats:
    """Unit-variance, mean-zero, heavy-tailed shocks carrying the flow's price impact."""
    heavy = rng.standard_t(4, surprise.size) * math.sqrt(0.5)
    return (heavy + IMPACT * surprise) * _SHOCK_SCALE


def trade_ticks(
    rng: np.random.Generator,
    log_steps: Floats,
    noise_variance: Floats,
    start_level: float,
    start_ticks: int,
    end_ticks: int,
) -> Ints:
    """Trade price of every order in ticks: a martingale from ``start_ticks`` that ends on
    ``end_ticks`` exactly.

    ``log_steps``: each order's log-return (noise + drift); ``start_level``: the opening price in
    ticks (a float) that turns them into tick steps; ``noise_variance``: each order's noise
    variance, which spreads the bridge's unit steps.
    """
    level_before = start_level * np.exp(np.concatenate([[0.0], np.cumsum(log_steps)[:-1]]))
    steps = np.floor(level_before * log_steps + rng.random(log_steps.size)).astype(np.int64)
    ticks = start_ticks + np.cumsum(steps)
    gap = int(end_ticks - ticks[-1])
    if gap:
        weights = noise_variance / noise_variance.sum()
        placed = rng.multinomial(abs(gap), weights)
        ticks += int(np.sign(gap)) * np.cumsum(placed)  # the placed steps add up to the gap
    return ticks
