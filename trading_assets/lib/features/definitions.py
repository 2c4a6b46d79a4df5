"""What the features are: configuration, groups, names, and the numerics both paths share.

Every feature is defined on a dense grid of bars of length ``L`` seconds per symbol, from its first
to its last bar. An interval without a trade is an empty bar: zero volume, zero trades, close
carried forward (so its 1-bar log return is 0). Windows are therefore by time, not by count: a
window of ``w`` seconds is the last ``n = w / L`` bars ending at the feature's ``event_timestamp``
(the end of the newest bar) and uses only data with time ≤ event_timestamp.

Warm-up: every window feature of window ``w`` is null until the series has a close at
``event_timestamp − w``, i.e. until ``n`` bars precede the newest one (index ``i ≥ n`` counted from
the symbol's first bar). Batch and live start from the same first bar, so they agree.

Per window ``w`` (suffix ``_{w}s``): ``vwap`` (notional / volume; null without volume),
``vwap_dev`` = log(close / vwap), ``rv`` = sqrt(Σ squared 1-bar log returns), ``mom`` =
log(close_t / close_{t−w}), ``flow_imb`` = (buy − sell) / (buy + sell) taker volume (null without
volume), ``intensity`` = trades per second, ``book_imb`` = mean of the point ``book_imb`` sampled at
the end of each bar in the window (a time average at bar resolution; null while any sample is).
Point features from the last book ticker at or before event_timestamp (its time is the local
receive time: spot bookTickers carry no exchange time): ``book_imb`` = (bid_qty − ask_qty) /
(bid_qty + ask_qty), ``microprice_dev`` = (microprice − mid) / mid, computed in the equal and
cancellation-free form (ask − bid) · book_imb / (ask + bid), and ``spread_bps``.
Labels: log(close_{t+h} / close_t) and its sign, null where t + h is beyond the data.

Model inputs vs display only: every feature is a ratio of prices, of quantities or of counts, so it
is unchanged when all prices are multiplied by ``k`` and all quantities divided by ``k`` (a new
price regime, or another quote currency or quantity step) — except the *level* kinds
(``LEVEL_KINDS``: ``vwap``), which are a price. Levels are computed, stored in gold and served
online for display, but never model inputs: a model splitting on a price level meets, in a new
price regime, values outside every range it was trained on. ``model_feature_names`` lists the
inputs a model may read; ``check_model_features`` refuses a level among them.

Exactness, which is what makes batch and live agree to the last bit:

* volumes, buy/sell volumes and notional are counted in integer units of 1e-8 (Binance's finest
  price and quantity step), so window sums are exact integer sums with no drift whatever the
  session length, and bars whose floats differ by summation-order noise map to the same integers;
* float window sums (squared returns, book imbalance) use blocks of ``n`` bars aligned to the epoch:
  the window ending in block ``k`` is the suffix sum of block ``k−1`` plus the prefix sum of block
  ``k`` (van Herk / Gil-Werman). Each window sum is at most ``2n`` fresh sequential additions,
  never a running total minus what left it: no drift, and both paths add in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PRICE = "price"
FLOW = "flow"
BOOK = "book"
DEPTH = "depth"
CROSS = "cross"
ALL_GROUPS: tuple[str, ...] = (PRICE, FLOW, BOOK)
"""The groups computed from one instrument's trades and book tickers (what the sidecar's live
feature tracker computes per instrument)."""
TRADE_GROUPS: tuple[str, ...] = (PRICE, FLOW)  # computable from trades alone (no book data)
KNOWN_GROUPS: tuple[str, ...] = (*ALL_GROUPS, DEPTH, CROSS)
"""Every group, in canonical order: ``depth`` reads one instrument's captured L2 book
(:mod:`trading_assets.lib.features.depth` computes it), ``cross`` pairs an instrument with a
reference instrument at another venue or market (:mod:`trading_assets.lib.features.cross_venue`)."""

# Quantities and notional are counted in these integer units (1e-8, Binance's finest step).
UNITS_PER_ONE = 100_000_000
SPREAD_BPS_FACTOR = 20_000.0  # (ask − bid) / mid in basis points = 2e4 · (ask − bid) / (ask + bid)

US_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class FeatureConfig:
    """Window lengths (seconds) of the windowed features and the label horizon (seconds)."""

    windows_s: tuple[int, ...] = (10, 60, 300, 900)
    label_horizon_s: int = 60

    def __post_init__(self) -> None:
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError(f"windows must be positive seconds, got {self.windows_s}")
        if len(set(self.windows_s)) != len(self.windows_s):
            raise ValueError(f"windows must be distinct, got {self.windows_s}")
        if self.label_horizon_s <= 0:
            raise ValueError(f"label horizon must be positive, got {self.label_horizon_s}")

    def bars_per_window(self, bar_s: int) -> tuple[int, ...]:
        """``n = w / L`` for every window; each window must be a whole number of bars."""
        return tuple(_whole_bars(w, bar_s, "window") for w in self.windows_s)

    def label_bars(self, bar_s: int) -> int:
        """Bars in the label horizon."""
        return _whole_bars(self.label_horizon_s, bar_s, "label horizon")


DEFAULT_CONFIG = FeatureConfig()


def _whole_bars(seconds: int, bar_s: int, what: str) -> int:
    if bar_s <= 0:
        raise ValueError(f"bar length must be positive seconds, got {bar_s}")
    if seconds % bar_s:
        raise ValueError(f"{what} of {seconds}s is not a multiple of the {bar_s}s bar length")
    return seconds // bar_s


def check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """The groups in canonical order; unknown names are an error."""
    unknown = sorted(set(groups) - set(KNOWN_GROUPS))
    if unknown:
        raise ValueError(f"unknown feature groups {unknown}; known: {list(KNOWN_GROUPS)}")
    return tuple(g for g in KNOWN_GROUPS if g in groups)


def own_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """``check_groups`` for a computation over one instrument's own data, which cannot make the
    cross group (it needs the reference instrument's bars too)."""
    chosen = check_groups(groups)
    if CROSS in chosen:
        raise ValueError(
            "the cross group pairs two instruments: compute it with "
            "trading_assets.lib.features.cross_venue (batch) or cross_venue_live (live)"
        )
    if DEPTH in chosen:
        raise ValueError(
            "the depth group reads the captured L2 book, not bars: compute it with "
            "trading_assets.lib.features.depth (batch and live)"
        )
    return chosen


# Windowed feature kinds per group, in output order; each is suffixed with ``_{w}s``.
WINDOWED_KINDS: dict[str, tuple[str, ...]] = {
    PRICE: ("vwap", "vwap_dev", "rv", "mom"),
    FLOW: ("flow_imb", "intensity"),
    BOOK: ("book_imb",),
    DEPTH: ("ofi",),
    CROSS: ("basis_bps", "lead_ret", "lead_gap", "xflow_imb"),
}
# Point-in-time features (last book ticker at or before event_timestamp), before the windowed ones.
POINT_KINDS: dict[str, tuple[str, ...]] = {
    PRICE: (),
    FLOW: (),
    BOOK: ("book_imb", "microprice_dev", "spread_bps"),
    DEPTH: (
        "depth_covered",
        "depth_imb_5",
        "depth_imb_10",
        "depth_imb_20",
        "l2_microprice_dev",
        "l2_spread_bps",
        "book_slope",
    ),
    CROSS: ("basis_bps", "funding_rate"),
}


def feature_names(
    config: FeatureConfig = DEFAULT_CONFIG, groups: Sequence[str] = ALL_GROUPS
) -> list[str]:
    """Feature column names in their stable order: by group, then kind, then window."""
    names: list[str] = []
    for group in check_groups(groups):
        names.extend(POINT_KINDS[group])
        for kind in WINDOWED_KINDS[group]:
            names.extend(f"{kind}_{w}s" for w in config.windows_s)
    return names


# Kinds whose value is a price level or scales with the quantity unit: display only (see above).
LEVEL_KINDS: frozenset[str] = frozenset({"vwap"})
_WINDOW_SUFFIX = re.compile(r"_[0-9]+s$")


def feature_kind(name: str) -> str:
    """The kind of a feature name: the name without its ``_{w}s`` window suffix."""
    return _WINDOW_SUFFIX.sub("", name)


def is_level_feature(name: str) -> bool:
    """Whether the feature is a price level or scales with the quantity unit (display only)."""
    return feature_kind(name) in LEVEL_KINDS


def model_feature_names(
    config: FeatureConfig = DEFAULT_CONFIG, groups: Sequence[str] = ALL_GROUPS
) -> list[str]:
    """The features a model may read, in ``feature_names`` order: every one but the levels."""
    return [name for name in feature_names(config, groups) if not is_level_feature(name)]


def level_feature_names(
    config: FeatureConfig = DEFAULT_CONFIG, groups: Sequence[str] = ALL_GROUPS
) -> list[str]:
    """The display-only features (levels), in ``feature_names`` order."""
    return [name for name in feature_names(config, groups) if is_level_feature(name)]


def check_model_features(names: Iterable[str]) -> None:
    """Refuse level features as model inputs, naming them and what to use instead."""
    levels = [name for name in names if is_level_feature(name)]
    if levels:
        raise ValueError(
            f"{levels} are level features, display only: they move with the price level and the "
            "volume unit, so a model reading them breaks in a new price regime. Use the scale-free "
            "features (model_feature_names), e.g. vwap_dev_{w}s instead of vwap_{w}s"
        )


def label_names(config: FeatureConfig = DEFAULT_CONFIG) -> list[str]:
    """Label column names: forward log return and its sign over the horizon."""
    h = config.label_horizon_s
    return [f"fwd_log_return_{h}s", f"fwd_sign_{h}s"]


def to_units(value: float) -> int:
    """A quantity or notional in integer 1e-8 units (exact for Binance decimals)."""
    return round(value * UNITS_PER_ONE)
