"""What the fallback controller reads (sources), how much staleness it tolerates (budgets), and
what it returns (decisions). Pure data: no I/O here."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import polars as pl

from trading_assets.lib.feature_store.online_reader import OnlineRead

NS_PER_S = 1_000_000_000


class FallbackLevel(IntEnum):
    """Where a feature vector came from, best first (the level number is what metrics show)."""

    ONLINE = 1
    REPAIRED = 2
    IMPUTED = 3
    SILVER = 4
    SAFE = 5


@dataclass(frozen=True)
class FallbackBudgets:
    """How fresh and how fast each level's data must be; ages are seconds before ``now``.

    A vector is as fresh as the newest real market data behind it: when the controller knows the
    symbol's newest message (a trade or a book ticker), a vector's age is counted from that
    message whenever it is older than the vector's own event time (batch materializations
    write the online store too, so a recent event time does not prove the feed alive).
    ``online_*``: level 1 accepts the online-store vector when it is at most
    ``online_max_age_s`` old and the read took at most ``online_max_latency_s``.
    ``live_max_age_s``: level 2 needs the symbol's stream to have delivered a message, and the
    in-memory state to hold a row, no older than this.
    ``impute_*``: level 3 carries a smoothed last good vector forward for at most
    ``impute_max_age_s``; its confidence halves every ``impute_half_life_s``; the smoothing EMA
    has half-life ``impute_smoothing_half_life_s``.
    ``silver_*``: level 4 reads the last ``silver_lookback_s`` of silver trades (at least the
    longest window plus one bar, so every window is warm), accepts the result when its newest bar
    ended at most ``silver_max_age_s`` ago, and pulls at most once per ``silver_retry_s``
    per symbol (a pull reads Iceberg; between pulls the last result is reused).
    ``min_coverage``: a vector with a smaller fraction of finite features is not served.
    ``*_confidence``: the confidence multiplier of levels 2 and 4 before coverage is applied.
    ``quiet_*``: a quiet feed is not a stale one. The age budgets of levels 1 to 3 fit a busy
    feed; each symbol's are extended by ``quiet_factor`` times the longest silence (no trade,
    no book ticker) its feed showed over the last ``quiet_window_s`` without outlasting its
    budgets, by at most ``quiet_max_s`` (:mod:`streaming.fallback.pace`).
    ``recover_after_s``: a symbol that fell from fresh data (levels 1 and 2) takes a better
    level again once it has been available on every decision for this long.

    Why these numbers (``python -m bench fallback_flaps`` prints the figures): the recorded
    Binance sessions never go 1 s without a trade or a book ticker, so 2 s, 3 s and 30 s hold
    there and catch a stall within seconds. The simulator's default market (seed 7, 200,000
    trades a day) sends a message only with a taker order: over six hours it was silent for
    more than 2 s some 650 times an hour, more than 30 s 2 to 5 times (up to 90 s at once), and
    the fixed budgets changed the level about 1,500 times an hour there. Three times the longest
    recent silence over five minutes covers a quiet regime's spells as it settles in, and a
    busy feed keeps its budgets (the recordings: under 3 s more). The 30 s cap bounds how long
    any silence is trusted: levels 1 and 2 are lost at most 33 s into a stall and the carried
    vector 60 s in; longer synthetic silences still change the level (8 to 13 times an hour
    there with these numbers, never on the recordings). Ten seconds of recovery
    keep a feed that stutters back to life (bursts of seconds between stalls) at the level it
    fell to, for the cost of serving level 1 ten seconds after a real stall ends.
    """

    online_max_age_s: float = 2.0
    online_max_latency_s: float = 0.005
    live_max_age_s: float = 3.0
    impute_max_age_s: float = 30.0
    impute_half_life_s: float = 10.0
    impute_smoothing_half_life_s: float = 5.0
    silver_lookback_s: float = 1_200.0
    silver_max_age_s: float = 600.0
    silver_retry_s: float = 10.0
    min_coverage: float = 0.5
    repaired_confidence: float = 0.9
    silver_confidence: float = 0.5
    quiet_max_s: float = 30.0
    quiet_factor: float = 3.0
    quiet_window_s: float = 300.0
    recover_after_s: float = 10.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0 or math.isinf(value):
                raise ValueError(f"budget {name} must be a finite number ≥ 0, got {value}")
        for name in ("min_coverage", "repaired_confidence", "silver_confidence"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class LiveSnapshot:
    """The in-memory state of one symbol: its newest feature row and its newest message time."""

    values: Mapping[str, float | None]
    event_time_ns: int
    last_message_ns: int


OnlineSource = Callable[[str], OnlineRead | None]
"""``symbol → newest online vector`` (None when the store has none for the symbol)."""

LiveSource = Callable[[str, int], LiveSnapshot | None]
"""``(symbol, now_ns) → in-memory state`` (None when memory holds nothing, e.g. after a restart)."""

LastMessageSource = Callable[[str], int | None]
"""``symbol → local receive time (ns) of its newest market message`` (a trade or a book ticker;
None before the first). This, not a vector's event time, says whether the feed is alive."""


class SilverFeatures(NamedTuple):
    """Level 4's vector already recomputed from silver by the source itself (one that reads and
    recomputes in another process): the vector in the controller's feature order and the end of
    its newest bar (ns), or None when the interval held no trades."""

    result: tuple[dict[str, float], int] | None


SilverSource = Callable[[str, int, int], pl.DataFrame | SilverFeatures]
"""``(symbol, start_ns, end_ns) → silver trades`` with ``start_ns ≤ event_time ≤ end_ns`` (the
``silver.trades`` columns; at least :data:`~trading_assets.lib.lakehouse.bars.SILVER_BAR_COLUMNS`),
which the controller turns into features; or those features already (:class:`SilverFeatures`)."""


@dataclass(frozen=True)
class FallbackDecision:
    """The vector to predict from and how much to trust it.

    ``features``: every name of the controller's feature order, in that order; a feature the
    level could not provide is NaN (the model's missing value). ``event_time_ns``: the time the
    vector describes (None in safe mode). ``data_time_ns``: how current the real data behind it
    is: ``event_time``, or the symbol's newest market message when that is older (a vector of
    intervals closed by the clock on a silent feed); ``age_s``: ``now − data_time`` (inf and None
    in safe mode).
    ``confidence_multiplier``: in [0, 1], multiplies the model's confidence. ``reason``: why this
    level; ``skipped``: why each better level was not used.
    """

    symbol: str
    now_ns: int
    level: FallbackLevel
    features: dict[str, float]
    event_time_ns: int | None
    age_s: float
    confidence_multiplier: float
    reason: str
    skipped: tuple[str, ...] = ()
    data_time_ns: int | None = None

    @property
    def explained(self) -> str:
        """``reason``, and below level 1 why each better level was passed over (safe mode's
        reason lists them already): what a prediction tells its reader about its data."""
        if not self.skipped or self.level in (FallbackLevel.ONLINE, FallbackLevel.SAFE):
            return self.reason
        return f"{self.reason} (passed over: {'; '.join(self.skipped)})"

    @property
    def can_trade(self) -> bool:
        """False in safe mode; the risk engine makes the final call otherwise."""
        return self.level is not FallbackLevel.SAFE


def ordered_vector(names: tuple[str, ...], values: Mapping[str, float | None]) -> dict[str, float]:
    """``values`` in ``names`` order, missing or None as NaN."""
    out: dict[str, float] = {}
    for name in names:
        value = values.get(name)
        out[name] = math.nan if value is None else float(value)
    return out


def coverage(vector: Mapping[str, float]) -> float:
    """Fraction of finite values (1.0 for an empty vector)."""
    if not vector:
        return 1.0
    return sum(math.isfinite(v) for v in vector.values()) / len(vector)


def age_s(now_ns: int, event_time_ns: int) -> float:
    """Seconds from an event time to now (negative when the event is ahead of the clock)."""
    return (now_ns - event_time_ns) / NS_PER_S
