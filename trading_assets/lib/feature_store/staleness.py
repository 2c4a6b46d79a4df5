"""Pure staleness checks for the serving path: the sidecar's heartbeat and the online rows' age.

The staleness sensor (``sensors/staleness.py``) does the I/O (an HTTP probe of ``/health``, one
online read per symbol) and hands the answers here; everything that decides — what is stale, why,
which symbols are due a repair and how that is remembered in the sensor's cursor — is plain data
so it can be tested without a server, a store or Dagster.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trading_assets.lib.feature_store.spec import STALE_AFTER_S
from trading_assets.lib.settings import SettingsError, load_settings

NS_PER_S = 1_000_000_000
DEFAULT_MAX_AGE_S = float(STALE_AFTER_S)
"""The feature views' TTL: past it Feast would not join the row either, so it is stale by the
project's own definition. A healthy sidecar keeps rows about a second old; the batch path
(landing → silver → features → materialize) lags a minute or two, so only both failing trips it."""
DEFAULT_REPAIR_COOLDOWN_S = 600.0
"""At most one repair per symbol per 10 minutes: when silver itself has stopped moving (the
sidecar is down, so nothing lands) a repair cannot help, and repeating it every tick would only
fill the run queue."""


def configured_sidecar_url() -> str:
    """The sidecar's base URL (``SIDECAR_URL`` in the settings)."""
    return load_settings().sidecar_url


def configured_max_age_s() -> float:
    """Seconds an online row may age before it is stale (``STALENESS_MAX_AGE_S``, else the
    feature views' TTL)."""
    raw = load_settings().tuning("STALENESS_MAX_AGE_S")
    if raw is None:
        return DEFAULT_MAX_AGE_S
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"STALENESS_MAX_AGE_S: expected seconds, got {raw!r}") from None


@dataclass(frozen=True)
class Heartbeat:
    """The sidecar's answer to ``GET /health``: ``ok`` only for 200 with ``status == "ok"``."""

    ok: bool
    detail: str
    uptime_s: float | None = None


def unreachable(error: BaseException | str) -> Heartbeat:
    """A probe that got no HTTP answer (refused, timed out, DNS): the sidecar counts as stale."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Heartbeat(False, f"unreachable ({text})")


def parse_health(status_code: int, body: Any) -> Heartbeat:
    """Judge a ``/health`` response (``{"status": "ok", "uptime_s": ...}`` when alive)."""
    if status_code != 200:
        return Heartbeat(False, f"/health answered HTTP {status_code}")
    if not isinstance(body, Mapping) or body.get("status") != "ok":
        return Heartbeat(False, f"/health answered {body!r}")
    uptime = body.get("uptime_s")
    uptime_s = float(uptime) if isinstance(uptime, int | float) else None
    detail = "ok" if uptime_s is None else f"ok (up {uptime_s:.0f} s)"
    return Heartbeat(True, detail, uptime_s)


@dataclass(frozen=True)
class SymbolFreshness:
    """One symbol's online row: its event time, age at ``now`` and whether that is stale."""

    symbol: str
    event_time_ns: int | None
    age_s: float | None
    stale: bool
    reason: str


@dataclass(frozen=True)
class Assessment:
    """What the sensor saw at one tick."""

    heartbeat: Heartbeat
    symbols: tuple[SymbolFreshness, ...]
    max_age_s: float
    now_ns: int

    @property
    def stale_symbols(self) -> list[str]:
        """Symbols to repair: every one when the heartbeat is down, else those with old rows."""
        return [s.symbol for s in self.symbols if s.stale]

    @property
    def stale(self) -> bool:
        return not self.heartbeat.ok or bool(self.stale_symbols)

    def cause(self) -> str:
        """Why the data is stale, in one line (run tag, sensor log, observation)."""
        parts = [] if self.heartbeat.ok else [f"sidecar heartbeat {self.heartbeat.detail}"]
        rows = [f"{s.symbol} {s.reason}" for s in self.symbols if s.stale and s.reason]
        if rows:
            parts.append("online rows stale: " + "; ".join(rows))
        return "; ".join(parts) or "fresh"

    def summary(self) -> str:
        """Heartbeat and every symbol's age, for skip reasons."""
        ages = ", ".join(f"{s.symbol} {_age_text(s.age_s)}" for s in self.symbols)
        return f"heartbeat {self.heartbeat.detail}; online ages {ages} (max {self.max_age_s:g} s)"

    def ages(self) -> dict[str, float | None]:
        """Age in seconds per symbol (None: no online row)."""
        return {s.symbol: None if s.age_s is None else round(s.age_s, 3) for s in self.symbols}


def _age_text(age_s: float | None) -> str:
    return "no row" if age_s is None else f"{age_s:.0f} s"


def assess(
    heartbeat: Heartbeat,
    event_times_ns: Mapping[str, int | None],
    now_ns: int,
    max_age_s: float = DEFAULT_MAX_AGE_S,
) -> Assessment:
    """Judge the online rows (``None``: the symbol has no row) and the heartbeat at ``now_ns``.

    A row from the future (clock skew between hosts) counts as age 0, never as stale. When the
    heartbeat is down every symbol is stale: nothing will push the next row, however fresh the
    current one is.
    """
    if max_age_s <= 0:
        raise ValueError(f"max_age_s must be positive, got {max_age_s}")
    judged = []
    for symbol, event_ns in sorted(event_times_ns.items()):
        if event_ns is None:
            judged.append(SymbolFreshness(symbol, None, None, True, "has no online row"))
            continue
        age_s = max(0.0, (now_ns - event_ns) / NS_PER_S)
        too_old = age_s > max_age_s
        reason = f"is {age_s:.0f} s old (> {max_age_s:g} s)" if too_old else ""
        stale = too_old or not heartbeat.ok
        judged.append(SymbolFreshness(symbol, event_ns, age_s, stale, reason))
    return Assessment(heartbeat, tuple(judged), max_age_s, now_ns)


@dataclass(frozen=True)
class RepairCursor:
    """The sensor's memory: when each symbol's last repair was requested (ns since the epoch)."""

    requested_ns: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> RepairCursor:
        """Read a cursor written by :meth:`dump`; empty or unreadable text starts afresh."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls({str(k): int(v) for k, v in data.get("requested_ns", {}).items()})
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dump(self) -> str:
        return json.dumps({"requested_ns": dict(sorted(self.requested_ns.items()))})

    def with_requests(self, symbols: Iterable[str], now_ns: int) -> RepairCursor:
        return RepairCursor({**self.requested_ns, **dict.fromkeys(symbols, now_ns)})


@dataclass(frozen=True)
class RepairPlan:
    """Stale symbols split into those due a repair now, those waiting out the cooldown, and those
    a repair cannot help."""

    due: list[str]
    cooling: dict[str, int]
    """Symbol → the earliest time (ns) its next repair may be requested."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Symbol → why rebuilding from silver would serve nothing newer."""

    def reasons(self) -> list[str]:
        """Why the symbols not due are left alone, one phrase each."""
        waits = [
            f"{s} repaired recently, next after {utc_text(ns)}" for s, ns in self.cooling.items()
        ]
        return [*waits, *(f"{s} {reason}" for s, reason in self.blocked.items())]


def silver_blocker(online_event_ns: int | None, silver_watermark_ns: int | None) -> str | None:
    """Why a rebuild from silver cannot freshen the online row (None: it can).

    A repair serves silver's newest trade at best; when silver holds nothing for the day, or
    nothing newer than the online row, it would fail or (on sqlite, which overwrites blindly)
    even put an older row back. What is stale then is upstream: the sidecar or its landing.
    """
    if silver_watermark_ns is None:
        return "has no silver rows today: nothing to rebuild from (is the sidecar landing trades?)"
    if online_event_ns is not None and silver_watermark_ns <= online_event_ns:
        return (
            f"has nothing in silver newer than its online row (silver's newest trade "
            f"{utc_text(silver_watermark_ns)}): the live landing has stopped"
        )
    return None


def plan_repairs(
    stale_symbols: Iterable[str],
    cursor: RepairCursor,
    now_ns: int,
    cooldown_s: float = DEFAULT_REPAIR_COOLDOWN_S,
    online_event_ns: Mapping[str, int | None] | None = None,
    silver_watermark_ns: Mapping[str, int | None] | None = None,
) -> RepairPlan:
    """Which stale symbols may be repaired now: none requested within ``cooldown_s`` and, when
    silver's watermarks are given, silver holding trades newer than the online row."""
    due: list[str] = []
    cooling: dict[str, int] = {}
    blocked: dict[str, str] = {}
    for symbol in sorted(set(stale_symbols)):
        if silver_watermark_ns is not None:
            online = (online_event_ns or {}).get(symbol)
            blocker = silver_blocker(online, silver_watermark_ns.get(symbol))
            if blocker is not None:
                blocked[symbol] = blocker
                continue
        last = cursor.requested_ns.get(symbol)
        next_ns = None if last is None else last + int(cooldown_s * NS_PER_S)
        if next_ns is None or now_ns >= next_ns:
            due.append(symbol)
        else:
            cooling[symbol] = next_ns
    return RepairPlan(due, cooling, blocked)


def repair_run_key(partition_key: str, now_ns: int, cooldown_s: float) -> str:
    """One key per partition and cooldown period, so Dagster itself drops a repeated request
    (e.g. after a lost cursor) within the same period."""
    period = int(now_ns // max(1, int(cooldown_s * NS_PER_S)))
    return f"repair:{partition_key}@{period}"


def utc_day(now_ns: int) -> dt.date:
    """The UTC calendar day of ``now_ns``: the live partition a repair rebuilds."""
    return dt.datetime.fromtimestamp(now_ns / NS_PER_S, dt.UTC).date()


def utc_text(moment_ns: int) -> str:
    """``2024-03-01T12:00:00Z`` (seconds), for reasons and tags."""
    moment = dt.datetime.fromtimestamp(moment_ns // NS_PER_S, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
