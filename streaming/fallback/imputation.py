"""Level 3: carry the last good vector forward, smoothed, with confidence decaying by age.

Definition (an EMA carry-forward; in Kalman terms a local-level model whose prediction step runs
without updates): every vector served by level 1 or 2 updates, per feature, an exponential moving
average in event time, ``m ← m + α·(x − m)`` with ``α = 1 − 2^(−Δt / smoothing_half_life)``.
A NaN value leaves its feature's average as it was. When no fresh vector exists, the imputed
value of each feature is its average as of the last update, unchanged (the best prediction of a
level with no new observations), while its uncertainty grows with the time since: the confidence
multiplier is ``2^(−age / half_life)``. Beyond ``max_age`` nothing is imputed, and a new
observation after such a gap restarts the averages instead of blending in a stale past.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from streaming.fallback.decision import age_s


@dataclass
class _Smoothed:
    values: dict[str, float]
    event_time_ns: int


class FeatureImputer:
    """EMA carry-forward of each symbol's last good feature vector (see the module docstring)."""

    def __init__(self, smoothing_half_life_s: float, max_age_s: float) -> None:
        self.smoothing_half_life_s = smoothing_half_life_s
        self.max_age_s = max_age_s
        self._state: dict[str, _Smoothed] = {}

    def observe(self, symbol: str, event_time_ns: int, vector: Mapping[str, float]) -> None:
        """Fold a fresh vector into the symbol's averages (older than the last one: ignored)."""
        state = self._state.get(symbol)
        if state is None or age_s(event_time_ns, state.event_time_ns) > self.max_age_s:
            self._state[symbol] = _Smoothed(dict(vector), event_time_ns)
            return
        elapsed = age_s(event_time_ns, state.event_time_ns)
        if elapsed <= 0:
            return
        alpha = (
            1.0
            if self.smoothing_half_life_s == 0
            else 1 - 2 ** (-elapsed / self.smoothing_half_life_s)
        )
        for name, value in vector.items():
            mean = state.values.get(name, math.nan)
            if math.isnan(value):
                continue
            state.values[name] = value if math.isnan(mean) else mean + alpha * (value - mean)
        state.event_time_ns = event_time_ns

    def impute(
        self, symbol: str, now_ns: int, max_age_s: float | None = None
    ) -> tuple[dict[str, float], int] | None:
        """The carried vector and the event time it describes; None when there is none or it is
        older than ``max_age_s`` (by default the imputer's own)."""
        state = self._state.get(symbol)
        limit_s = self.max_age_s if max_age_s is None else max_age_s
        if state is None or age_s(now_ns, state.event_time_ns) > limit_s:
            return None
        return dict(state.values), state.event_time_ns

    def forget(self, symbol: str) -> None:
        """Drop a symbol's averages (its memory is gone, e.g. the symbol was unsubscribed)."""
        self._state.pop(symbol, None)
