"""The trading rule: a predicted forward return becomes a position only when it pays its costs.

The evaluation scores this rule and the sidecar trades by it, so what passes the gate is what is
served. Costs of one side (entering or leaving a unit position), in log-return units:

    side_cost  = (fee_bp + spread_bps / 2) · 1e-4
    round_trip = 2 · side_cost = (2 · fee_bp + spread_bps) · 1e-4

Each side pays the exchange fee (``fee_bp`` per side, ``FEE_BP`` by default) and crosses half the
quoted spread: realized returns are measured between mid (or close) prices, while a market order
fills at the bid or the ask. ``spread_bps`` is the full spread relative to the mid, in basis
points, as the ``spread_bps`` feature defines it: 2e4 · (ask − bid) / (ask + bid).

Rule: the target position is ``+1`` when ``predicted_return > round_trip``, ``−1`` when
``predicted_return < −round_trip``, else ``0`` (flat); a prediction that is not a number is flat.
Costs are first-order: a log return is compared with a cost expressed as a fraction of notional.
Each non-flat decision is one trade: opened at the decision and closed one label horizon later,
it pays the full round trip at the decision's spread (the sidecar settles its paper position a
horizon after opening it, and the evaluation charges each P&L row so), hence the bar above.

The spread: live, the ``spread_bps`` feature when the sidecar's feature service carries the book;
otherwise, and for history (which has no book) unless the frame has a ``spread_bps`` column,
``ASSUMED_SPREAD_BPS``. Only numpy is imported: the serving process loads this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

FEE_BP = 10.0
"""Exchange fee per side in basis points (Binance spot's base taker rate)."""
ASSUMED_SPREAD_BPS = 1.0
"""The spread assumed where no book was seen. BTCUSDT and ETHUSDT spot quote one tick wide most
of the time (well under 0.1 bp); 1 bp leaves room for thinner moments and other symbols."""
BP = 1e-4
SPREAD_FEATURE = "spread_bps"
LABEL_STD_KEY = "label_std"
"""The metadata key of a model's own label dispersion, its signal scale when recorded."""
DEFAULT_SIGNAL_SCALE = 1e-3
"""A 60 s BTC/ETH log return has a standard deviation of roughly 5-10 bp in calm markets; the
predicted return that maps to a signal of tanh(1) when a model recorded no label spread."""


def side_cost(spread_bps: float = ASSUMED_SPREAD_BPS, fee_bp: float = FEE_BP) -> float:
    """What one side of a unit position costs, as a fraction of notional."""
    return (fee_bp + 0.5 * spread_bps) * BP


def side_costs(
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS, fee_bp: float = FEE_BP
) -> npt.NDArray[np.float64]:
    """:func:`side_cost` at each row's spread."""
    return (fee_bp + 0.5 * np.asarray(spread_bps, np.float64)) * BP


def round_trip_cost(spread_bps: float = ASSUMED_SPREAD_BPS, fee_bp: float = FEE_BP) -> float:
    """What entering and leaving a unit position costs: the bar a prediction must clear."""
    return 2.0 * side_cost(spread_bps, fee_bp)


def known_spread(spread_bps: float | None, assumed_bps: float = ASSUMED_SPREAD_BPS) -> float:
    """``spread_bps`` when it is a usable spread (finite, not negative), else the assumed one."""
    if spread_bps is None or not (0.0 <= spread_bps < math.inf):
        return assumed_bps
    return spread_bps


def target_position(
    predicted_return: float,
    spread_bps: float = ASSUMED_SPREAD_BPS,
    fee_bp: float = FEE_BP,
) -> float:
    """The position (−1, 0 or +1) to hold over the horizon for one prediction (see the module)."""
    cost = round_trip_cost(spread_bps, fee_bp)
    if predicted_return > cost:
        return 1.0
    if predicted_return < -cost:
        return -1.0
    return 0.0


def target_positions(
    predicted_return: npt.ArrayLike,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
    fee_bp: float = FEE_BP,
) -> npt.NDArray[np.float64]:
    """:func:`target_position` of every row; ``spread_bps`` a scalar or one value per row."""
    predicted = np.asarray(predicted_return, np.float64)
    cost = 2.0 * side_costs(spread_bps, fee_bp)
    return np.where(predicted > cost, 1.0, np.where(predicted < -cost, -1.0, 0.0))


def known_spreads(
    spread_bps: npt.ArrayLike, assumed_bps: float = ASSUMED_SPREAD_BPS
) -> npt.NDArray[np.float64]:
    """:func:`known_spread` of every row."""
    spread = np.asarray(spread_bps, np.float64)
    usable = np.isfinite(spread) & (spread >= 0.0)
    return np.where(usable, spread, assumed_bps)


def signal_from_return(predicted_return: float, scale: float) -> float:
    """Map a predicted forward return to a signal in [-1, 1]: ``tanh(predicted_return / scale)``.

    A non-finite prediction maps to 0 (no view) rather than propagating NaN into sizing.
    """
    if scale <= 0 or not math.isfinite(scale):
        raise ValueError(f"signal scale must be a positive number, got {scale}")
    if not math.isfinite(predicted_return):
        return 0.0
    return math.tanh(predicted_return / scale)


def signal_scale_of(metadata: Mapping[str, Any], default_scale: float) -> float:
    """A model's signal scale: its own label dispersion when it recorded one, else the default."""
    recorded = metadata.get(LABEL_STD_KEY)
    try:
        value = float(recorded) if recorded is not None else math.nan
    except (TypeError, ValueError):
        value = math.nan
    return value if math.isfinite(value) and value > 0 else default_scale
