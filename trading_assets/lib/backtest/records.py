"""What a paper account lands: the decisions it traded on and its fills, one JSON line each.

The sidecar writes them (kinds ``paper_decisions`` and ``paper_fills``); a backtest replays the
decisions on the landed book and compares its fills with these. ``symbol`` is the instrument id,
as in a landed prediction.
"""

from __future__ import annotations

import math

import msgspec


class PaperDecision(msgspec.Struct, frozen=True, kw_only=True):
    """One prediction a role's paper account traded on, with what its decision read (None where
    a value was missing: JSON has no NaN)."""

    role: str
    version: str
    symbol: str
    time_ns: int
    predicted_return: float | None
    spread_bps: float | None
    rv_60s: float | None
    fallback_level: int
    signal_scale: float


def known(value: float) -> float | None:
    """``value``, or None for NaN (what a landed line holds for a missing value)."""
    return None if math.isnan(value) else value


class PaperFill(msgspec.Struct, frozen=True, kw_only=True):
    """One fill of a role's paper account (``time_ns``: when the order reached the venue)."""

    role: str
    symbol: str
    time_ns: int
    decided_ns: int
    reason: str
    source: str
    notional: float
    quantity: float
    price: float
    mid: float
    fee: float
    slippage_bps: float
    levels: int
    unfilled: float
    beyond_touch: float


def paper_fill(role: str, row: tuple) -> PaperFill:
    """A :class:`PaperFill` of a paper trader's fill row (``paper.FILL_SCHEMA``'s order)."""
    (time_ns, decided_ns, symbol, reason, source, notional, quantity, price, mid, fee, slippage,
     levels, unfilled, beyond) = row  # fmt: skip
    return PaperFill(role=role, symbol=symbol, time_ns=time_ns, decided_ns=decided_ns,
                     reason=reason, source=source, notional=notional, quantity=quantity,
                     price=price, mid=mid, fee=fee, slippage_bps=slippage, levels=levels,
                     unfilled=unfilled, beyond_touch=beyond)  # fmt: skip
