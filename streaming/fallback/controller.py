"""The fallback controller: one decision per symbol and tick, from the best fresh source.

Levels, tried in order (the first that passes wins; every skipped level records why):

1. **Online** — the online-store vector, if it is at most ``online_max_age_s`` old and the read
   took at most ``online_max_latency_s``. With a ``last_message`` source its age counts from the
   symbol's newest market message when that is older than the vector: a vector's own event time
   says how far its features reach, not that the feed is alive (batch materializations write the
   online store too). Without any message for the symbol, level 1 is skipped.
2. **Repaired** — the stale online vector corrected by the in-memory deltas. *Delta correction*
   means: the online vector describes time ``t0``; the sidecar's in-memory state has stepped the
   same incremental definitions through every bar interval after ``t0`` up to ``t1`` (the newest
   closed interval, empty intervals included) from the trades it holds. Each feature whose window
   the memory covers is replaced by its value at ``t1`` — exactly the batch value at ``t1``
   (the live path is the batch definition, see ``trading_assets.lib.features``). A feature whose
   window reaches before the memory's first bar (memory younger than the window, e.g. after a
   restart) cannot be corrected and keeps its online value from ``t0``, if that value is at most
   ``impute_max_age_s`` old, else NaN. Requires a stream message and a row within
   ``live_max_age_s``.
3. **Imputed** — EMA carry-forward of the last fresh vector (levels 1 and 2; see
   :mod:`streaming.fallback.imputation`), at most ``impute_max_age_s`` old, confidence halving
   every ``impute_half_life_s``.
4. **Silver** — features recomputed by the batch definition from the last ``silver_lookback_s``
   of silver trades (see :mod:`streaming.fallback.silver`), if the newest bar ended within
   ``silver_max_age_s``. Pulled at most once per ``silver_retry_s`` per symbol.
5. **Safe** — no usable data: all-NaN vector, confidence 0, no trading, the reasons recorded.

A quiet feed is not a stale one: the age budgets of levels 1 to 3 fit a busy feed, and each
symbol's are extended by what its own recent pace makes an ordinary silence (its quiet
extension, :mod:`streaming.fallback.pace`; it needs a ``last_message`` source). Going down is
immediate. Going back up is not: a symbol that fell from fresh data takes a better level again
only once it has been available on every decision for ``recover_after_s``, so a feed stuttering
back to life does not swing the level with each burst. Meanwhile the held level serves, its
carried vector following the fresh data. The first fresh vector after a start is taken at once.

The controller keeps no clock: the caller passes ``now_ns``. A source that raises is treated as
unavailable (its error is the reason) rather than taking the sidecar down. The controller does no
I/O itself; its sources do, and the silver source is slow (an Iceberg read), so call
:meth:`decide` off the event loop when level 4 may be reached.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from streaming.fallback.decision import (
    NS_PER_S,
    FallbackBudgets,
    FallbackDecision,
    FallbackLevel,
    LastMessageSource,
    LiveSource,
    OnlineRead,
    OnlineSource,
    SilverFeatures,
    SilverSource,
    age_s,
    coverage,
    ordered_vector,
)
from streaming.fallback.imputation import FeatureImputer
from streaming.fallback.pace import QuietExtension
from streaming.fallback.silver import features_from_silver
from trading_assets.lib.features import DEFAULT_CONFIG, FeatureConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _SilverPull:
    pulled_ns: int
    result: tuple[dict[str, float], int] | None
    error: str | None


def _no_source(*_: object) -> None:
    return None


class FallbackController:
    """Chooses each tick's feature vector for a symbol (see the module docstring for levels)."""

    def __init__(
        self,
        feature_order: Sequence[str],
        online: OnlineSource = _no_source,
        live: LiveSource = _no_source,
        silver: SilverSource | None = None,
        budgets: FallbackBudgets | None = None,
        config: FeatureConfig = DEFAULT_CONFIG,
        bar_s: int = 1,
        last_message: LastMessageSource | None = None,
    ) -> None:
        self.feature_order = tuple(feature_order)
        self.online, self.live, self.silver = online, live, silver
        self.last_message = last_message
        self.budgets = budgets or FallbackBudgets()
        self.config, self.bar_s = config, bar_s
        reach_s = max(config.windows_s) + bar_s
        if silver is not None and self.budgets.silver_lookback_s < reach_s:
            raise ValueError(
                f"silver_lookback_s {self.budgets.silver_lookback_s} does not cover the longest "
                f"window plus one bar ({reach_s} s)"
            )
        self.imputer = FeatureImputer(
            self.budgets.impute_smoothing_half_life_s, self.budgets.impute_max_age_s
        )
        self.levels: dict[str, FallbackLevel] = {}
        """Each symbol's current level (for the API and a Prometheus gauge)."""
        self.level_counts: Counter[FallbackLevel] = Counter()
        """Decisions served per level since start (for a Prometheus counter)."""
        self.changes: Counter[tuple[FallbackLevel, FallbackLevel]] = Counter()
        """Level changes (from, to) per pair since start, the first decision not counted."""
        self._silver_pulls: dict[str, _SilverPull] = {}
        self._was_fresh: set[str] = set()  # symbols served by level 1 or 2 at least once
        self._back_since: dict[str, int] = {}  # when a better level became available again
        self._quiet: dict[str, QuietExtension] = {}
        self._failing: dict[tuple[str, str], str] = {}  # (source, symbol) → its error's type

    def decide(self, symbol: str, now_ns: int) -> FallbackDecision:
        """The feature vector to predict from at ``now_ns``, its level, age and confidence."""
        skipped: list[str] = []
        online = self._call(self.online, skipped, "online", symbol)
        newest = None
        if self.last_message is not None:
            newest = self._call(self.last_message, skipped, "feed", symbol)
        extension_s = self._quiet_extension(symbol, now_ns, newest)
        fresh = self._online(
            symbol, now_ns, online, newest, extension_s, skipped
        ) or self._repaired(symbol, now_ns, online, extension_s, skipped)
        if fresh is not None:
            assert fresh.data_time_ns is not None
            self.imputer.observe(symbol, fresh.data_time_ns, fresh.features)
        fresh, floor = self._hold_back(symbol, now_ns, fresh, online, extension_s, skipped)
        decision = fresh or self._degraded(symbol, now_ns, floor, extension_s, skipped)
        self._record(decision)
        return decision

    def _quiet_extension(self, symbol: str, now_ns: int, newest_ns: int | None) -> float:
        if newest_ns is None:
            return 0.0
        pace = self._quiet.get(symbol)
        if pace is None:
            b = self.budgets
            pace = self._quiet[symbol] = QuietExtension(
                b.online_max_age_s, b.quiet_factor, b.quiet_max_s, b.quiet_window_s
            )
        return pace.observe(now_ns, newest_ns)

    def _degraded(
        self,
        symbol: str,
        now_ns: int,
        best: FallbackLevel,
        extension_s: float,
        skipped: list[str],
    ) -> FallbackDecision:
        """The first of levels 3, 4 and 5 that passes, none better than ``best``."""
        if best <= FallbackLevel.IMPUTED:
            decision = self._imputed(symbol, now_ns, extension_s, skipped)
            if decision is not None:
                return decision
        if best <= FallbackLevel.SILVER:
            decision = self._from_silver(symbol, now_ns, skipped)
            if decision is not None:
                return decision
        return self._safe(symbol, now_ns, skipped)

    def _hold_back(
        self,
        symbol: str,
        now_ns: int,
        fresh: FallbackDecision | None,
        online: OnlineRead | None,
        extension_s: float,
        skipped: list[str],
    ) -> tuple[FallbackDecision | None, FallbackLevel]:
        """``fresh`` and level 1 as the best allowed, unless ``fresh`` would raise a symbol that
        fell from fresh data before it has been available for ``recover_after_s``: then the
        held level's fresh decision (the repaired one when level 2 is held, else None) and the
        held level as the best allowed."""
        held = self.levels.get(symbol)
        if fresh is None or held is None or fresh.level >= held or symbol not in self._was_fresh:
            self._back_since.pop(symbol, None)
            return fresh, FallbackLevel.ONLINE
        since = self._back_since.setdefault(symbol, now_ns)
        waited = age_s(now_ns, since)
        recover_s = self.budgets.recover_after_s
        if waited >= recover_s:
            return fresh, FallbackLevel.ONLINE
        skipped.append(
            f"{fresh.level.name.lower()}: back for {waited:.1f} s of the {recover_s:g} s "
            "a recovery must last"
        )
        if held is FallbackLevel.REPAIRED:
            return self._repaired(symbol, now_ns, online, extension_s, skipped), held
        return None, held

    def _online(
        self,
        symbol: str,
        now_ns: int,
        read: OnlineRead | None,
        newest_ns: int | None,
        extension_s: float,
        skipped: list[str],
    ) -> FallbackDecision | None:
        b = self.budgets
        if read is None:
            if not any(s.startswith("online") for s in skipped):
                skipped.append("online: no vector for the symbol")
            return None
        data_time_ns, what = read.event_time_ns, "vector"
        if self.last_message is not None:
            if newest_ns is None:
                if not any(s.startswith("feed") for s in skipped):
                    skipped.append("online: no market message received for the symbol")
                return None
            if newest_ns < data_time_ns:
                data_time_ns, what = newest_ns, "newest market message"
        age, max_age = age_s(now_ns, data_time_ns), b.online_max_age_s + extension_s
        if read.latency_s > b.online_max_latency_s:
            skipped.append(
                f"online: read took {read.latency_s * 1e3:.2f} ms > "
                f"{b.online_max_latency_s * 1e3:.2f} ms"
            )
            return None
        if age > max_age:
            skipped.append(f"online: {what} {age:.1f} s old > {round(max_age, 1):g} s")
            return None
        vector = ordered_vector(self.feature_order, read.values)
        return self._accept(
            symbol, now_ns, FallbackLevel.ONLINE, vector, read.event_time_ns, 1.0,
            f"online vector {age:.2f} s old", skipped, data_time_ns,
        )  # fmt: skip

    def _repaired(
        self,
        symbol: str,
        now_ns: int,
        online: OnlineRead | None,
        extension_s: float,
        skipped: list[str],
    ) -> FallbackDecision | None:
        b = self.budgets
        snapshot = self._call(self.live, skipped, "live", symbol, now_ns)
        if snapshot is None:
            if not any(s.startswith("live") for s in skipped):
                skipped.append("live: no in-memory state")
            return None
        message_age = age_s(now_ns, snapshot.last_message_ns)
        row_age = age_s(now_ns, snapshot.event_time_ns)
        max_age = b.live_max_age_s + extension_s
        if message_age > max_age:
            skipped.append(f"live: last message {message_age:.1f} s ago > {round(max_age, 1):g} s")
            return None
        if row_age > max_age:
            skipped.append(f"live: newest row {row_age:.1f} s old > {round(max_age, 1):g} s")
            return None
        vector = ordered_vector(self.feature_order, snapshot.values)
        carried = 0
        if online is not None and age_s(now_ns, online.event_time_ns) <= b.impute_max_age_s:
            for name, value in vector.items():
                old = online.values.get(name)
                if math.isnan(value) and old is not None and math.isfinite(old):
                    vector[name], carried = float(old), carried + 1
        reason = f"in-memory state {row_age:.2f} s old, {carried} features carried from online"
        return self._accept(
            symbol, now_ns, FallbackLevel.REPAIRED, vector, snapshot.event_time_ns,
            b.repaired_confidence, reason, skipped, snapshot.last_message_ns,
        )  # fmt: skip

    def _imputed(
        self, symbol: str, now_ns: int, extension_s: float, skipped: list[str]
    ) -> FallbackDecision | None:
        b = self.budgets
        max_age = b.impute_max_age_s + extension_s
        carried = self.imputer.impute(symbol, now_ns, max_age)
        if carried is None:
            skipped.append(f"imputed: no good vector in the last {round(max_age, 1):g} s")
            return None
        vector, event_time_ns = carried
        age = age_s(now_ns, event_time_ns)
        decay = 1.0 if b.impute_half_life_s == 0 else 2 ** (-max(age, 0.0) / b.impute_half_life_s)
        return self._accept(
            symbol, now_ns, FallbackLevel.IMPUTED, vector, event_time_ns, decay,
            f"EMA carry-forward of a vector {age:.1f} s old", skipped,
        )  # fmt: skip

    def _from_silver(self, symbol: str, now_ns: int, skipped: list[str]) -> FallbackDecision | None:
        b = self.budgets
        if self.silver is None:
            skipped.append("silver: no silver source")
            return None
        pull = self._silver_pulls.get(symbol)
        # A clock that went backwards (tests, replays) also forces a new pull.
        if pull is None or not 0 <= age_s(now_ns, pull.pulled_ns) < b.silver_retry_s:
            pull = self._pull_silver(symbol, now_ns)
        if pull.error is not None:
            skipped.append(f"silver: {pull.error}")
            return None
        if pull.result is None:
            skipped.append(f"silver: no trades in the last {b.silver_lookback_s:g} s")
            return None
        vector, event_time_ns = pull.result
        age = age_s(now_ns, event_time_ns)
        if age > b.silver_max_age_s:
            skipped.append(f"silver: newest bar {age:.0f} s old > {b.silver_max_age_s:g} s")
            return None
        return self._accept(
            symbol, now_ns, FallbackLevel.SILVER, dict(vector), event_time_ns,
            b.silver_confidence, f"recomputed from silver, {age:.1f} s old", skipped,
        )  # fmt: skip

    def _pull_silver(self, symbol: str, now_ns: int) -> _SilverPull:
        assert self.silver is not None
        start_ns = now_ns - round(self.budgets.silver_lookback_s * NS_PER_S)
        try:
            pulled = self.silver(symbol, start_ns, now_ns)
            if isinstance(pulled, SilverFeatures):  # recomputed by the source (out of process)
                result = pulled.result
            else:
                result = features_from_silver(pulled, self.feature_order, self.config, self.bar_s)
            pull = _SilverPull(now_ns, result, None)
        except Exception as error:
            log.warning("silver microbatch for %s failed: %r", symbol, error)
            pull = _SilverPull(now_ns, None, f"pull failed: {error!r}")
        self._silver_pulls[symbol] = pull
        return pull

    def _accept(
        self,
        symbol: str,
        now_ns: int,
        level: FallbackLevel,
        vector: dict[str, float],
        event_time_ns: int,
        confidence: float,
        reason: str,
        skipped: list[str],
        newest_message_ns: int | None = None,
    ) -> FallbackDecision | None:
        covered = coverage(vector)
        if covered < self.budgets.min_coverage:
            skipped.append(
                f"{level.name.lower()}: {covered:.0%} of features finite "
                f"< {self.budgets.min_coverage:.0%}"
            )
            return None
        data_time_ns = event_time_ns
        if newest_message_ns is not None:
            data_time_ns = min(event_time_ns, newest_message_ns)
        return FallbackDecision(
            symbol, now_ns, level, vector, event_time_ns, age_s(now_ns, data_time_ns),
            confidence * covered, reason, tuple(skipped), data_time_ns,
        )  # fmt: skip

    def _safe(self, symbol: str, now_ns: int, skipped: list[str]) -> FallbackDecision:
        vector = dict.fromkeys(self.feature_order, math.nan)
        return FallbackDecision(
            symbol, now_ns, FallbackLevel.SAFE, vector, None, math.inf, 0.0,
            "safe mode: " + "; ".join(skipped), tuple(skipped),
        )  # fmt: skip

    def _call(
        self, source: Callable[..., T], skipped: list[str], name: str, *args: object
    ) -> T | None:
        key = (name, str(args[0]))
        try:
            answer = source(*args)
        except Exception as error:
            # Logged when a source starts failing (or fails differently), not on every tick of
            # an outage; each decision still records the error as its reason.
            kind = type(error).__name__
            if self._failing.get(key) != kind:
                log.warning("%s source failed for %s: %r", name, args[0], error)
                self._failing[key] = kind
            skipped.append(f"{name}: read failed: {error!r}")
            return None
        if self._failing.pop(key, None) is not None:
            log.info("%s source answers again for %s", name, args[0])
        return answer

    def _record(self, decision: FallbackDecision) -> None:
        symbol, level = decision.symbol, decision.level
        previous = self.levels.get(symbol)
        self.levels[symbol] = level
        self.level_counts[level] += 1
        if level <= FallbackLevel.REPAIRED:
            self._was_fresh.add(symbol)
        if previous is level:
            return
        self._back_since.pop(symbol, None)
        if previous is not None:
            self.changes[previous, level] += 1
        was = "start" if previous is None else f"level {int(previous)}"
        log_at = logging.WARNING if level is FallbackLevel.SAFE else logging.INFO
        log.log(
            log_at, "%s fallback %s → level %d (%s): %s", symbol, was, int(level), level.name,
            decision.reason,
        )  # fmt: skip
