"""The synthetic market's planted edge: a latent drift in sparse episodes that flow reveals.

The process, per symbol-day, second by second (defaults of :class:`EdgeParams` in brackets):

* the latent drift is 0 (quiet) or, during an **episode**, a constant ``μ`` log-return per
  second. Quiet spells are geometric (memoryless), so episodes begin ``episodes_per_hour`` times
  an hour on average [5]; an episode lasts ``episode_min_s`` [15 s] plus a geometric tail, for
  ``episode_mean_s`` [30 s] on average; the day opens quiet;
* an episode's speed ``|μ|`` is log-normal around ``drift_bp_per_min`` [80 bp a minute, sd of
  the log 0.3], so it moves the price by some 40 bp; its direction runs against the drift the
  day has accumulated so far with probability ``reversion`` [0.8], else it is a fair coin: later
  episodes take back what earlier ones gave, and the day's open-to-close spread is left to the
  noise (:data:`~streaming.simulator.synthetic.DAILY_SIGMA`) while 1 min returns add up to some
  5 % of realized volatility a day;
* informed traders act on the drift as it happens; the **price follows it** ``lead_s`` [30 s]
  later (:attr:`DriftPath.price_drift`): flow leads, momentum lags.

How the market reveals the latent drift (at edge strength 1):

* **taker flow**: in an episode each taker order is informed with probability
  ``informed_share`` [0.85] and then trades in its direction, with ``informed_size`` [4] times
  the usual notional; the other orders keep the uninformed, persistent sign (so
  ``P(buy) = ½ + ½ · informed_share`` in an up episode);
* **trade intensity**: taker orders arrive ``1 + intensity_boost`` [5] times as fast;
* **book imbalance**: the best bid's size over the best ask's is multiplied by
  ``e^{book_lean}`` [e] in an up episode, ``e^{−book_lean}`` in a down one.

The oracle (:meth:`DriftPath.expected_forward_return`) knows the latent drift up to ``t``: the
price's next ``lead_s`` seconds of drift exactly, and the current episode's survival after that
(a closed form: the tail is memoryless). It does not foresee episodes not yet begun, whose
direction leans against the day's drift: over 60 s of quiet that is worth 0.7 bp on average,
against the 40 bp of an episode. Otherwise its forecast is the conditional mean of the 60 s
return, so its linear IC bounds every forecast's. Measured on default days
(``bench/bench_synthetic_edge``), it is about 0.8 (its rank IC about 0.44: every quiet moment
ties at 0).

Edge strength ``e`` multiplies the drift speed, the informed share (capped at 1), the informed
size's excess over 1, the intensity boost and the book lean; the episodes themselves (times,
lengths, directions, speeds) are drawn from their own stream and do not depend on ``e``.
``e = 0`` leaves a pure random walk (see :mod:`streaming.simulator.price_path`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

SECONDS_PER_DAY = 86_400
US_PER_SECOND = 1_000_000
BP_PER_MINUTE = 1e-4 / 60.0  # one basis point per minute as a log-return per second


@dataclass(frozen=True)
class EdgeParams:
    """The latent drift process and how strongly the market reveals it (at edge strength 1)."""

    episodes_per_hour: float = 5.0
    episode_mean_s: float = 30.0
    episode_min_s: int = 15
    drift_bp_per_min: float = 80.0  # median speed of an episode
    drift_dispersion: float = 0.3  # sd of log speed across episodes
    reversion: float = 0.8  # share of episodes that run against the day's accumulated drift
    lead_s: int = 30  # informed flow trades on the drift this long before the price moves
    informed_share: float = 0.85
    informed_size: float = 4.0  # notional of an informed order over an uninformed one's
    intensity_boost: float = 4.0
    book_lean: float = 1.0

    def __post_init__(self) -> None:
        if self.episodes_per_hour <= 0 or not 0 <= self.episode_min_s < self.episode_mean_s - 1:
            raise ValueError("episodes need a positive rate and a mean above their minimum + 1 s")
        if 3600.0 / self.episodes_per_hour <= self.episode_mean_s + 1:
            raise ValueError("episodes would leave no quiet time between them")
        if not 0 <= self.lead_s < SECONDS_PER_DAY:
            raise ValueError(f"the lead must be in [0, 1 day), got {self.lead_s}")
        if not 0.0 <= self.reversion <= 1.0:
            raise ValueError(f"the reversion share must be in [0, 1], got {self.reversion}")

    @property
    def quiet_mean_s(self) -> float:
        """Mean quiet spell: an episode plus a quiet spell take 1/rate on average."""
        return 3600.0 / self.episodes_per_hour - self.episode_mean_s

    @property
    def tail_stay_probability(self) -> float:
        """Past its minimum length, the chance an episode's second is followed by another."""
        return 1.0 - 1.0 / (self.episode_mean_s - self.episode_min_s)


DEFAULT_EDGE_PARAMS = EdgeParams()


@dataclass(frozen=True)
class DriftPath:
    """One day's latent drift (log-return per second, edge strength applied) and its law.

    ``informed`` is the drift informed traders act on; the price follows it ``lead_s`` seconds
    later (``price_drift``): flow leads, momentum lags.
    """

    informed: npt.NDArray[np.float64]  # the latent drift of every second of the day; 0 when quiet
    age: npt.NDArray[np.int64]  # seconds since the second's episode began (0 in its first)
    lead_s: int
    episode_min_s: int
    tail_stay_probability: float
    informed_share: float
    informed_size: float
    intensity_boost: float
    book_lean: float

    @cached_property
    def price_drift(self) -> npt.NDArray[np.float64]:
        """The price's drift in every second: the latent drift ``lead_s`` seconds earlier (none
        in the day's first ``lead_s`` seconds: the days' episodes are independent)."""
        shifted = self.informed[: SECONDS_PER_DAY - self.lead_s]
        return np.concatenate([np.zeros(self.lead_s), shifted])

    @cached_property
    def direction(self) -> npt.NDArray[np.int8]:
        """Sign of the latent drift in every second (−1, 0, +1)."""
        return np.sign(self.informed).astype(np.int8)

    def direction_at(self, time_us: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """Sign of the latent drift at times in µs since the day's start."""
        seconds = np.clip(np.asarray(time_us, np.int64) // US_PER_SECOND, 0, SECONDS_PER_DAY - 1)
        return self.direction[seconds]

    def cumulative(self, time_us: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Price drift accrued from 00:00 to each time (µs since the day's start), linear within
        a second."""
        t = np.clip(np.asarray(time_us, np.int64), 0, SECONDS_PER_DAY * US_PER_SECOND)
        before = np.concatenate([[0.0], np.cumsum(self.price_drift)])
        second = np.minimum(t // US_PER_SECOND, SECONDS_PER_DAY - 1)
        fraction = (t - second * US_PER_SECOND) / US_PER_SECOND
        return before[second] + fraction * self.price_drift[second]

    def survival(
        self, age: npt.NDArray[np.int64], ahead: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """Chance that an episode at ``age`` still runs ``ahead`` seconds later (ahead ≥ 0)."""
        past_minimum = np.maximum(0, age + ahead - self.episode_min_s)
        already = np.maximum(0, age - self.episode_min_s)
        return self.tail_stay_probability ** (past_minimum - already)

    def expected_forward_return(
        self, time_us: npt.ArrayLike, horizon_s: int
    ) -> npt.NDArray[np.float64]:
        """The oracle: the price drift expected over (t, t + horizon] by one who knows the latent
        drift up to t (times in µs since the day's start).

        The price's next ``lead_s`` seconds of drift are already decided (the latent drift of the
        last ``lead_s`` seconds); after that, the current episode goes on with its survival
        probability (:meth:`survival`); episodes not yet begun are not foreseen (see the module).
        The next day's episodes are independent of this one's, so nothing is expected past
        midnight.
        """
        t = np.clip(np.asarray(time_us, np.int64), 1, SECONDS_PER_DAY * US_PER_SECOND)
        current = (t - 1) // US_PER_SECOND  # the second holding the instant just before t
        rest = ((current + 1) * US_PER_SECOND - t) / US_PER_SECOND  # of that second, after t
        now, age = self.informed[current], self.age[current]
        total = np.zeros(t.shape)
        for i in range(horizon_s + 1):  # price seconds current + i overlapping (t, t + h]
            weight = rest if i == 0 else (1.0 - rest if i == horizon_s else 1.0)
            source = current + i - self.lead_s  # the latent second that drives it
            known = self.informed[np.clip(source, 0, SECONDS_PER_DAY - 1)]
            expected = now * self.survival(age, np.maximum(source - current, 0))
            drift = np.where(source <= current, known, expected)
            inside = (current + i < SECONDS_PER_DAY) & (source >= 0)
            total += np.where(inside, weight * drift, 0.0)
        return total


def _directions(
    rng: np.random.Generator, moves: npt.NDArray[np.float64], reversion: float
) -> npt.NDArray[np.float64]:
    """Each episode's direction: against the drift accumulated so far with probability
    ``reversion`` (when there is any), else a fair coin. ``moves``: each episode's |drift|."""
    against, coins = rng.random(moves.size) < reversion, rng.random(moves.size) < 0.5
    directions = np.empty(moves.size)
    accumulated = 0.0
    for k in range(moves.size):  # a hundred-odd episodes a day
        if against[k] and accumulated != 0.0:
            directions[k] = -math.copysign(1.0, accumulated)
        else:
            directions[k] = 1.0 if coins[k] else -1.0
        accumulated += directions[k] * moves[k]
    return directions


def drift_path(
    rng: np.random.Generator, params: EdgeParams = DEFAULT_EDGE_PARAMS, strength: float = 1.0
) -> DriftPath:
    """A day of episodes drawn from ``rng`` (the same draws whatever the strength). The day
    opens quiet; quiet spells are memoryless, so that is the stationary law given quiet."""
    # Enough alternating spells to cover the day in all but astronomically rare cases.
    pairs = int(SECONDS_PER_DAY / (params.quiet_mean_s + params.episode_mean_s) * 2 + 64)
    quiet = rng.geometric(1.0 / params.quiet_mean_s, pairs)
    tail = rng.geometric(1.0 - params.tail_stay_probability, pairs)
    trending = params.episode_min_s + tail
    speeds = params.drift_bp_per_min * np.exp(params.drift_dispersion * rng.normal(size=pairs))
    directions = _directions(rng, speeds * trending, params.reversion)
    lengths = np.column_stack([quiet, trending]).ravel()
    drifts = np.column_stack([np.zeros(pairs), directions * speeds]).ravel()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    informed = np.repeat(drifts * BP_PER_MINUTE * strength, lengths)[:SECONDS_PER_DAY]
    age = (np.arange(lengths.sum()) - np.repeat(starts, lengths))[:SECONDS_PER_DAY]
    if informed.size < SECONDS_PER_DAY:
        missing = SECONDS_PER_DAY - informed.size
        informed = np.concatenate([informed, np.zeros(missing)])
        age = np.concatenate([age, np.arange(missing) + (age[-1] + 1 if age.size else 0)])
    return DriftPath(
        informed=informed,
        age=age.astype(np.int64),
        lead_s=params.lead_s,
        episode_min_s=params.episode_min_s,
        tail_stay_probability=params.tail_stay_probability,
        informed_share=min(1.0, params.informed_share * strength),
        informed_size=1.0 + (params.informed_size - 1.0) * strength,
        intensity_boost=params.intensity_boost * strength,
        book_lean=params.book_lean * strength,
    )
