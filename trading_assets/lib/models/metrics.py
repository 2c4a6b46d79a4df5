"""Out-of-sample metrics of a return forecast, for the model and the naive baselines it must beat.

* ``ic``: Spearman rank correlation of prediction and realized forward log return, on every row.
  A constant prediction (the zero and buy-and-hold baselines) ranks nothing: its IC is 0.
* ``ic_p_value``: one-sided p-value of a positive IC (H0: no rank correlation), on the P&L rows
  only: one row per horizon per symbol. Rows sampled more often than the horizon share most of
  their forward return, and counting them as independent would overstate significance. Symbols
  traded at the same times still move together, so the test is, if anything, lenient.
* ``ic_difference_se``: standard error of the IC difference of two forecasts of the same rows,
  by a bootstrap that draws whole blocks of rows (one label horizon each), for the same reason.
* ``hit_rate``: share of rows with a non-zero realized return whose sign the prediction matched;
  a zero prediction matches nothing (it takes no view), so the zero baseline scores 0.
* ``rmse``: root mean squared error of prediction vs realized return (NaN for buy-and-hold,
  which holds a position without forecasting a return).
* ``pnl``: the trading rule of :mod:`~trading_assets.lib.models.policy` on the P&L rows, as the
  sidecar trades it: each row whose prediction gives a position (−1 or +1) is one trade, opened
  at the row and closed one horizon later, earning ``position · return`` and paying the round
  trip at that row's spread (fee plus half the spread on each side); a flat row neither earns nor
  pays. Summed in log-return units (costs enter at their first-order size). Rows must be
  non-overlapping in time per symbol (one per horizon), else the same move is counted repeatedly.
* ``trades``: sides traded on the P&L rows (two per trade); ``turnover``: sides per P&L row, i.e.
  per decision of one symbol over one horizon (0: never trades, 2: trades every horizon).

Baselines: ``zero`` predicts a return of 0 (never trades); ``last`` predicts the previous
horizon's realized return, log(close_t / close_{t−h}), known at t so it leaks nothing, and trades
it by the same rule; ``buy_hold`` is not a trading rule but a held position: long every row, one
side paid per symbol at the start, none at the end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from trading_assets.lib.models.policy import (
    ASSUMED_SPREAD_BPS,
    FEE_BP,
    side_costs,
    target_positions,
)

MAX_IC_P_VALUE = 0.01
BASELINES = ("zero", "last", "buy_hold")
IC_SE_RESAMPLES = 200  # block-bootstrap draws behind a standard error of an IC difference

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Metrics:
    """One forecast's scores on one set of rows."""

    ic: float
    ic_p_value: float
    hit_rate: float
    rmse: float
    pnl: float
    trades: int  # sides paid for, in units of position
    turnover: float  # sides per P&L row

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for logging and metadata."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    """The model and the baselines scored on the same rows, at the same costs."""

    rows: int
    pnl_rows: int
    model: Metrics
    zero: Metrics
    last: Metrics
    buy_hold: Metrics
    fee_bp: float = FEE_BP
    spread_bps: float = ASSUMED_SPREAD_BPS  # mean spread charged on the P&L rows

    @property
    def baselines(self) -> dict[str, Metrics]:
        """Each baseline's scores by name."""
        return {name: getattr(self, name) for name in BASELINES}

    @property
    def best_baseline_ic(self) -> float:
        return max(m.ic for m in self.baselines.values())

    @property
    def best_baseline_pnl(self) -> float:
        return max(m.pnl for m in self.baselines.values())

    def as_dict(self) -> dict[str, float]:
        """Flat ``{forecast}_{metric}`` floats, for logging and metadata."""
        out: dict[str, float] = {
            "rows": float(self.rows),
            "pnl_rows": float(self.pnl_rows),
            "fee_bp": float(self.fee_bp),
            "spread_bps": float(self.spread_bps),
        }
        for name in ("model", *BASELINES):
            out |= {f"{name}_{k}": v for k, v in getattr(self, name).as_dict().items()}
        return out


def information_coefficient(prediction: npt.ArrayLike, realized: npt.ArrayLike) -> float:
    """Spearman rank correlation; 0 when either side is constant (no ranking to compare)."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    if p.size < 2 or np.all(p == p[0]) or np.all(r == r[0]):
        return 0.0
    return float(stats.spearmanr(p, r).statistic)  # pyright: ignore[reportAttributeAccessIssue]


def ic_difference_se(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    realized: npt.ArrayLike,
    blocks: npt.ArrayLike,
    resamples: int = IC_SE_RESAMPLES,
    seed: int = 0,
) -> float:
    """Standard error of ``IC(second) − IC(first)``, two forecasts of the same rows, by a seeded
    bootstrap that draws whole ``blocks`` (one label per row; rows whose labels overlap share a
    block, so they are drawn together: drawing them one by one would count the same move as
    many independent ones). NaN with fewer than two blocks (no spread to estimate)."""
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    r = np.asarray(realized, np.float64)
    _, block_of = np.unique(np.asarray(blocks), return_inverse=True)
    n_blocks = int(block_of.max()) + 1 if block_of.size else 0
    if n_blocks < 2:
        return float("nan")
    order = np.argsort(block_of, kind="stable")
    bounds = np.searchsorted(block_of[order], np.arange(n_blocks + 1))
    members = [order[bounds[k] : bounds[k + 1]] for k in range(n_blocks)]
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for i in range(resamples):
        rows = np.concatenate([members[k] for k in rng.integers(0, n_blocks, n_blocks)])
        differences[i] = information_coefficient(b[rows], r[rows]) - information_coefficient(
            a[rows], r[rows]
        )
    return float(np.std(differences, ddof=1))


def ic_p_value(prediction: npt.ArrayLike, realized: npt.ArrayLike) -> float:
    """One-sided p-value of a positive Spearman correlation (t approximation); 1 when there is
    nothing to rank (fewer than three rows, or a constant side). Rows must be independent."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    if p.size < 3 or np.all(p == p[0]) or np.all(r == r[0]):
        return 1.0
    result = stats.spearmanr(p, r, alternative="greater")
    value = float(result.pvalue)  # pyright: ignore[reportAttributeAccessIssue]
    return value if np.isfinite(value) else 1.0


def hit_rate(prediction: npt.ArrayLike, realized: npt.ArrayLike) -> float:
    """Share of non-zero realized returns whose sign the prediction matched (nan if none)."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    moved = r != 0
    if not moved.any():
        return float("nan")
    return float(np.mean(np.sign(p[moved]) == np.sign(r[moved])))


def rmse(prediction: npt.ArrayLike, realized: npt.ArrayLike) -> float:
    """Root mean squared error."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    return float(np.sqrt(np.mean((p - r) ** 2)))


def position_pnl(
    position: npt.ArrayLike,
    realized: npt.ArrayLike,
    group: npt.ArrayLike | None = None,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
    fee_bp: float = FEE_BP,
) -> tuple[float, int]:
    """After-cost P&L (log-return units) and sides traded of holding ``position`` (units) over
    each row's return, a side paid per unit the position changes by (at that row's spread);
    rows in time order within each group, every group starting flat and left open at its end.
    The buy-and-hold baseline's accounting, not the trading rule's (see :func:`trade_pnl`)."""
    held, r = np.asarray(position, np.float64), np.asarray(realized, np.float64)
    cost = np.broadcast_to(side_costs(spread_bps, fee_bp), held.shape)
    keys = np.zeros(held.size, np.int64) if group is None else np.asarray(group)
    total, sides = 0.0, 0.0
    for key in np.unique(keys):
        mine = keys == key
        changes = np.abs(np.diff(held[mine], prepend=0.0))
        sides += float(changes.sum())
        total += float(np.sum(held[mine] * r[mine]) - np.sum(changes * cost[mine]))
    return total, round(sides)


def trade_pnl(
    position: npt.ArrayLike,
    realized: npt.ArrayLike,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
    fee_bp: float = FEE_BP,
) -> tuple[float, int]:
    """After-cost P&L (log-return units) and sides traded when each row's ``position`` (units)
    is its own trade, opened at the row and closed a horizon later: every unit pays the round
    trip at the row's spread, whatever the rows before it held."""
    size, r = np.asarray(position, np.float64), np.asarray(realized, np.float64)
    units = np.abs(size)
    round_trip = 2.0 * np.broadcast_to(side_costs(spread_bps, fee_bp), size.shape)
    return float(np.sum(size * r) - np.sum(units * round_trip)), round(2.0 * float(units.sum()))


def policy_pnl(
    prediction: npt.ArrayLike,
    realized: npt.ArrayLike,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
    fee_bp: float = FEE_BP,
) -> tuple[float, int]:
    """P&L and sides of trading each prediction by the policy's rule (see the module)."""
    positions = target_positions(prediction, spread_bps, fee_bp)
    return trade_pnl(positions, realized, spread_bps, fee_bp)


def _rows(
    size: int, pnl_mask: npt.ArrayLike | None, spread_bps: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], Array]:
    mask = np.ones(size, bool) if pnl_mask is None else np.asarray(pnl_mask, bool)
    spread = np.broadcast_to(np.asarray(spread_bps, np.float64), (size,))
    return mask, spread


def _with_pnl(
    ic: float, p_value: float, hits: float, error: float, pnl: float, sides: int, rows: int
) -> Metrics:
    turnover = sides / rows if rows else 0.0
    return Metrics(ic, p_value, hits, error, pnl, sides, turnover)


def score(
    prediction: npt.ArrayLike,
    realized: npt.ArrayLike,
    pnl_mask: npt.ArrayLike | None = None,
    fee_bp: float = FEE_BP,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
) -> Metrics:
    """All metrics of one forecast; P&L and the IC's p-value only on ``pnl_mask`` rows
    (non-overlapping horizons). ``spread_bps``: one value, or one per row."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    mask, spread = _rows(r.size, pnl_mask, spread_bps)
    pnl, sides = policy_pnl(p[mask], r[mask], spread[mask], fee_bp)
    return _with_pnl(
        information_coefficient(p, r),
        ic_p_value(p[mask], r[mask]),
        hit_rate(p, r),
        rmse(p, r),
        pnl,
        sides,
        int(mask.sum()),
    )


def buy_and_hold(
    realized: npt.ArrayLike,
    group: npt.ArrayLike | None = None,
    pnl_mask: npt.ArrayLike | None = None,
    fee_bp: float = FEE_BP,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
) -> Metrics:
    """Long one unit on every P&L row: the drift, less one side per symbol."""
    r = np.asarray(realized, np.float64)
    mask, spread = _rows(r.size, pnl_mask, spread_bps)
    g = None if group is None else np.asarray(group)[mask]
    long = np.ones(int(mask.sum()))
    pnl, sides = position_pnl(long, r[mask], g, spread[mask], fee_bp)
    hits = hit_rate(np.ones_like(r), r)
    return _with_pnl(0.0, 1.0, hits, float("nan"), pnl, sides, int(mask.sum()))


def compare(
    prediction: npt.ArrayLike,
    realized: npt.ArrayLike,
    last_return: npt.ArrayLike,
    group: npt.ArrayLike | None = None,
    pnl_mask: npt.ArrayLike | None = None,
    fee_bp: float = FEE_BP,
    spread_bps: npt.ArrayLike = ASSUMED_SPREAD_BPS,
) -> Comparison:
    """The model against the zero, last-return and buy-and-hold baselines on the same rows;
    ``group`` (each row's symbol) keeps one buy-and-hold position per symbol."""
    r = np.asarray(realized, np.float64)
    mask, spread = _rows(r.size, pnl_mask, spread_bps)
    args = (mask, fee_bp, spread)
    return Comparison(
        rows=int(r.size),
        pnl_rows=int(mask.sum()),
        model=score(prediction, r, *args),
        zero=score(np.zeros_like(r), r, *args),
        last=score(last_return, r, *args),
        buy_hold=buy_and_hold(r, group, *args),
        fee_bp=fee_bp,
        spread_bps=float(spread[mask].mean()) if mask.any() else 0.0,
    )


def beats_baselines(
    report: Comparison,
    ic_margin: float | None = 0.0,
    pnl_margin: float | None = 0.0,
    max_ic_p_value: float | None = MAX_IC_P_VALUE,
) -> bool:
    """The evaluation gate, on the trading rule's out-of-sample scores. For every test given
    (None skips it): the model's IC exceeds the best baseline IC by more than ``ic_margin``;
    its after-cost P&L exceeds the best baseline P&L by more than ``pnl_margin`` (log-return
    units); its IC's p-value on non-overlapping rows is at most ``max_ic_p_value``. Every test
    given must pass, and at least one must be given."""
    if ic_margin is None and pnl_margin is None and max_ic_p_value is None:
        raise ValueError("give an IC margin, a P&L margin, a p-value bound, or several")
    ok = True
    if ic_margin is not None:
        ok &= report.model.ic > report.best_baseline_ic + ic_margin
    if pnl_margin is not None:
        ok &= report.model.pnl > report.best_baseline_pnl + pnl_margin
    if max_ic_p_value is not None:
        ok &= report.model.ic_p_value <= max_ic_p_value
    return bool(ok)
