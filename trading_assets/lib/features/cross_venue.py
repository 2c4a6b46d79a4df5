"""Cross-venue features: one instrument (the *own*) against a *reference* instrument, in batch.

The reference is another venue's spot market of the same asset, or its perpetual. Every feature
is defined on the own instrument's dense grid of bars of ``L`` seconds (see ``definitions``: the
empty-bar rule, windows by time, ``n = w / L`` bars), one row per own bar, and uses only data
with time ≤ the row's ``event_timestamp`` (the end of the own bar).

The reference on that grid:

* its close at a bar is the close of its latest bar starting at or before the own bar's start:
  a reference interval without trades, or one whose data stopped, carries its last close
  forward (one grid on the epoch, so bars of one interval end at the same time); null before the
  reference's first bar;
* its taker buy and sell volumes at a bar are those of its bar of the same interval (0 when none).

Point features: ``basis_bps`` = 1e4 · log(close / ref_close) (null without a reference close);
``funding_rate``, the last funding rate of the pair's perpetual (:attr:`CrossPair.funding`)
received at or before event_timestamp (its time is the local receive time, as for book tickers:
the live path knows it has every one up to a time once a message received after that time is
in; null before the first and for a pair without a perpetual).

Per window ``w`` (suffix ``_{w}s``): ``basis_bps`` the mean of the point basis over the window's
``n`` bars (block sums as in ``definitions``; null while any of them is null); ``lead_ret`` =
log(ref_close_t / ref_close_{t−w}), the reference's ``mom`` (what the leader did, which a model
pairs with the own instrument's future return; null while the reference has no close at t − w);
``lead_gap`` = lead_ret − own ``mom``; ``xflow_imb`` = (buy − sell) / (buy + sell) of the taker
volumes of both instruments summed over the window, in the integer 1e-8 units of the flow
features (null without volume). The two instruments' quantities are added as they are, so they
must count the same thing (the base asset, as spot and linear perpetuals do); an inverse or
contract-sized market needs its quantities converted first.

Warm-up as in ``definitions``: every windowed feature is null while the own series has fewer than
``n`` bars before the newest (index ``i < n``). Every feature is a ratio of the two instruments'
prices, of their quantities, or a funding rate (a fraction), so all are unchanged when all
prices of both instruments are multiplied by ``k`` and all quantities divided by ``k``: none is a
level, all are model inputs.

The live twin is :mod:`trading_assets.lib.features.cross_venue_live`; both perform the same float
operations in the same order (integer window sums, block sums, one ``log`` per ratio), so their
values agree to the last bit on the same input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from trading_assets.lib.features.batch import infer_bar_seconds, ratio, window_float_sum
from trading_assets.lib.features.definitions import (
    CROSS,
    DEFAULT_CONFIG,
    POINT_KINDS,
    UNITS_PER_ONE,
    US_PER_SECOND,
    WINDOWED_KINDS,
    FeatureConfig,
    feature_names,
)
from trading_assets.lib.instruments import market_of
from trading_assets.lib.lakehouse.records import PERPETUAL, SPOT, MarketType

BASIS_FACTOR = 10_000.0
"""A log ratio in basis points."""

POINT_CROSS_KINDS: tuple[str, ...] = POINT_KINDS[CROSS]
WINDOWED_CROSS_KINDS: tuple[str, ...] = WINDOWED_KINDS[CROSS]
FUNDING_COLUMNS = ("time", "funding_rate")
_UTC_US = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class CrossPair:
    """An own instrument and its reference, as instrument ids (``VENUE:SYMBOL``), and markets."""

    own: str
    reference: str
    own_market: MarketType = SPOT
    reference_market: MarketType = SPOT

    def __post_init__(self) -> None:
        if self.own == self.reference:
            raise ValueError(f"an instrument is not its own reference: {self.own}")

    @classmethod
    def of(cls, own: str, reference: str) -> CrossPair:
        """The pair of two instrument ids, each with the market its venue trades."""
        return cls(own, reference, market_of(own), market_of(reference))

    @property
    def funding(self) -> str | None:
        """The perpetual whose funding rate is ``funding_rate``: the own instrument's when it is
        a perpetual, else the reference's when that one is; None for two spot markets."""
        if self.own_market == PERPETUAL:
            return self.own
        if self.reference_market == PERPETUAL:
            return self.reference
        return None


def cross_feature_names(config: FeatureConfig = DEFAULT_CONFIG) -> list[str]:
    """Cross feature names in their stable order: point ones, then by kind and window (the
    ``cross`` group's ``feature_names``)."""
    return feature_names(config, (CROSS,))


class FundingRateLike(Protocol):
    """What a funding record must carry (``streaming.records.FundingRate`` has it)."""

    @property
    def funding_rate(self) -> str: ...
    @property
    def receive_ns(self) -> int: ...
    @property
    def instrument(self) -> str: ...


def funding_frame(rates: Iterable[FundingRateLike], instrument: str | None) -> pl.DataFrame:
    """The ``funding`` input of :func:`compute_cross_features`: the rates of ``instrument`` (the
    pair's :attr:`CrossPair.funding`; None gives no rows) in receive order, each timed by its
    local receive time and read with Python's ``float`` as the live path reads it."""
    rows = [
        (r.receive_ns // 1000, float(r.funding_rate))
        for r in rates
        if instrument is not None and r.instrument == instrument
    ]
    frame = pl.DataFrame(
        rows, schema={"time_us": pl.Int64, "funding_rate": pl.Float64}, orient="row"
    )
    return frame.select(time=pl.col("time_us").cast(_UTC_US), funding_rate="funding_rate")


def _units(column: str) -> pl.Expr:
    """A float quantity as exact integer 1e-8 units (as the flow features count them)."""
    return (pl.col(column) * UNITS_PER_ONE).round().cast(pl.Int64)


def _check_bars(bars: pl.DataFrame, what: str, bar_s: int) -> str:
    """The one symbol of a bar frame of ``bar_s`` bars with taker volumes, or an error."""
    symbols = bars["instrument"].unique().to_list()
    if len(symbols) != 1:
        raise ValueError(f"{what} bars must hold one symbol, got {symbols}")
    if bars["bar_start"].is_duplicated().any():
        raise ValueError(f"{what} bars hold more than one row for a bar_start")
    if bars.select(pl.any_horizontal(pl.col("buy_volume", "sell_volume").is_null()).any()).item():
        raise ValueError(f"{what} bars need taker buy/sell volumes in every bar (xflow_imb)")
    off_grid = pl.col("bar_start").dt.epoch("us") % (bar_s * US_PER_SECOND) != 0
    if bars.select(off_grid.any()).item():
        raise ValueError(f"{what} bars are not all on the {bar_s}s grid")
    return str(symbols[0])


def _keyed(bars: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return bars.select(
        pl.col("bar_start").cast(_UTC_US),
        pl.col("close").cast(pl.Float64).alias(f"{prefix}close"),
        _units("buy_volume").alias(f"{prefix}buy_u"),
        _units("sell_volume").alias(f"{prefix}sell_u"),
    ).sort("bar_start")


def _pair_grid(own: pl.DataFrame, reference: pl.DataFrame, bar_s: int) -> pl.DataFrame:
    """The own dense grid with the reference's carried close and same-interval flows."""
    own_keyed, ref_keyed = _keyed(own, ""), _keyed(reference, "ref_")
    start = pl.col("bar_start")
    grid = own_keyed.select(
        bar_start=pl.datetime_range(start.min(), start.max(), f"{bar_s}s", time_zone="UTC")
    ).with_columns(start.cast(_UTC_US))
    flows = ("buy_u", "sell_u", "ref_buy_u", "ref_sell_u")
    return (
        grid.join(own_keyed, on="bar_start", how="left", maintain_order="left")
        .join(ref_keyed.drop("ref_close"), on="bar_start", how="left", maintain_order="left")
        .join_asof(ref_keyed.select("bar_start", "ref_close"), on="bar_start", strategy="backward")
        .with_columns(pl.col("close").forward_fill(), pl.col(flows).fill_null(0))
        .with_columns(
            index=pl.int_range(pl.len()),
            abs_bar=pl.col("bar_start").dt.epoch("us") // (bar_s * US_PER_SECOND),
            event_timestamp=pl.col("bar_start") + pl.duration(seconds=bar_s),
        )
    )


def _join_funding(grid: pl.DataFrame, funding: pl.DataFrame | None) -> pl.DataFrame:
    """The last funding rate received at or before each event_timestamp."""
    if funding is None:
        return grid.with_columns(funding_rate=pl.lit(None, pl.Float64))
    rates = (
        funding.select(pl.col("time").cast(_UTC_US), pl.col("funding_rate").cast(pl.Float64))
        .with_row_index("_order")
        .sort("time", "_order")
        # Several in one microsecond: the last received is the rate at that time.
        .unique(subset=["time"], keep="last", maintain_order=True)
        .drop("_order")
    )
    return grid.join_asof(rates, left_on="event_timestamp", right_on="time", strategy="backward")


def _cross_exprs(config: FeatureConfig, bar_s: int) -> list[pl.Expr]:
    close, ref_close = pl.col("close"), pl.col("ref_close")
    basis = pl.col("basis_bps")
    missing = basis.is_null().cast(pl.Int64)
    buy = pl.col("buy_u") + pl.col("ref_buy_u")
    sell = pl.col("sell_u") + pl.col("ref_sell_u")
    means, leads, gaps, imbalances = [], [], [], []
    for n in config.bars_per_window(bar_s):
        warm = pl.col("index") >= n
        mean = window_float_sum(basis.fill_null(0.0), n, keys=()) * (1.0 / n)
        means.append(pl.when(warm & (missing.rolling_sum(n) == 0)).then(mean))
        lead = (ref_close / ref_close.shift(n)).log()
        leads.append(pl.when(warm).then(lead))
        gaps.append(pl.when(warm).then(lead - (close / close.shift(n)).log()))
        buys, sells = buy.rolling_sum(n), sell.rolling_sum(n)
        imbalances.append(pl.when(warm).then(ratio(buys - sells, buys + sells)))
    windowed = [*means, *leads, *gaps, *imbalances]
    names = cross_feature_names(config)[len(POINT_CROSS_KINDS) :]
    return [basis, pl.col("funding_rate")] + [
        e.alias(name) for e, name in zip(windowed, names, strict=True)
    ]


def compute_cross_features(
    own_bars: pl.DataFrame,
    reference_bars: pl.DataFrame,
    funding: pl.DataFrame | None = None,
    config: FeatureConfig = DEFAULT_CONFIG,
    bar_s: int | None = None,
) -> pl.DataFrame:
    """Cross features at every own bar interval (empty ones included), see the module docstring.

    ``own_bars``, ``reference_bars``: the lakehouse bar columns of one instrument each (``close``,
    ``buy_volume``, ``sell_volume``, ``bar_start``, ``symbol``), bars of ``bar_s`` seconds on
    the epoch's grid (inferred from the own bars when not given). ``funding``: FUNDING_COLUMNS
    (``time`` the receive time, UTC µs) of the pair's perpetual, as :func:`funding_frame` makes;
    None for a pair without one.
    Output: ``symbol`` (the own one), ``event_timestamp`` (bar end, UTC µs) and the features
    as Float64, in ``cross_feature_names`` order.
    """
    names = cross_feature_names(config)
    if own_bars.is_empty():
        schema = {"instrument": pl.String, "event_timestamp": _UTC_US} | dict.fromkeys(
            names, pl.Float64
        )
        return pl.DataFrame(schema=schema)
    bar_s = bar_s or infer_bar_seconds(own_bars)
    symbol = _check_bars(own_bars, "own", bar_s)
    if not reference_bars.is_empty():
        _check_bars(reference_bars, "reference", bar_s)
    grid = _pair_grid(own_bars, reference_bars, bar_s)
    grid = _join_funding(grid, funding).with_columns(
        basis_bps=(pl.col("close") / pl.col("ref_close")).log() * BASIS_FACTOR
    )
    out = grid.select(
        pl.lit(symbol, pl.String).alias("instrument"),
        "event_timestamp",
        *_cross_exprs(config, bar_s),
    )
    return out.select("instrument", "event_timestamp", *(pl.col(n).cast(pl.Float64) for n in names))
