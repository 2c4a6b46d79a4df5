"""Out-of-sample metrics of a return forecast, for the model and the naive baselines it must beat.

* ``ic``: Spearman rank correlation of prediction and realized forward log return. A constant
  prediction (the zero baseline) ranks nothing, so its IC is defined as 0, not undefined.
* ``hit_rate``: share of rows with a non-zero realized return whose sign the prediction matched;
  a zero prediction matches nothing (it takes no view), so the zero baseline scores 0.
* ``rmse``: root mean squared error of prediction vs realized return.
* ``pnl``: a sign strategy: hold ``sign(prediction)`` (−1, 0, +1) over each row's horizon, earn
  ``position · return`` and pay ``fee_bp`` per side on every change of position (flat → long is
  one side, long → short two), summed in log-return units (the fee is subtracted as a log-return
  cost, its first-order size). Positions are tracked per symbol, starting flat. Rows must be
  non-overlapping in time per symbol (one per horizon), else the same move is counted repeatedly.

Baselines: ``zero`` predicts a return of 0; ``last`` predicts the previous horizon's realized
return, log(close_t / close_{t−h}), which is known at t and so leaks nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

FEE_BP = 10.0
BP = 1e-4

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Metrics:
    """One forecast's scores on one set of rows."""

    ic: float
    hit_rate: float
    rmse: float
    pnl: float
    trades: int  # sides paid for (position changes counted in units)

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for logging and metadata."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    """The model and both baselines scored on the same rows."""

    rows: int
    pnl_rows: int
    model: Metrics
    zero: Metrics
    last: Metrics

    def as_dict(self) -> dict[str, float]:
        """Flat ``{forecast}_{metric}`` floats, for logging and metadata."""
        out: dict[str, float] = {"rows": float(self.rows), "pnl_rows": float(self.pnl_rows)}
        for name in ("model", "zero", "last"):
            out |= {f"{name}_{k}": v for k, v in getattr(self, name).as_dict().items()}
        return out


def information_coefficient(prediction: npt.ArrayLike, realized: npt.ArrayLike) -> float:
    """Spearman rank correlation; 0 when either side is constant (no ranking to compare)."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    if p.size < 2 or np.all(p == p[0]) or np.all(r == r[0]):
        return 0.0
    return float(stats.spearmanr(p, r).statistic)  # pyright: ignore[reportAttributeAccessIssue]


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


def sign_strategy_pnl(
    prediction: npt.ArrayLike,
    realized: npt.ArrayLike,
    group: npt.ArrayLike | None = None,
    fee_bp: float = FEE_BP,
) -> tuple[float, int]:
    """After-fee P&L (log-return units) and sides traded; rows in time order within each group."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    keys = np.zeros(p.size, np.int64) if group is None else np.asarray(group)
    total, sides = 0.0, 0
    for key in np.unique(keys):
        mine = keys == key
        position = np.sign(p[mine])
        changes = np.abs(np.diff(position, prepend=0.0))
        sides += int(changes.sum())
        total += float(np.sum(position * r[mine]) - fee_bp * BP * changes.sum())
    return total, sides


def score(
    prediction: npt.ArrayLike,
    realized: npt.ArrayLike,
    group: npt.ArrayLike | None = None,
    pnl_mask: npt.ArrayLike | None = None,
    fee_bp: float = FEE_BP,
) -> Metrics:
    """All metrics of one forecast; P&L only on ``pnl_mask`` rows (non-overlapping horizons)."""
    p, r = np.asarray(prediction, np.float64), np.asarray(realized, np.float64)
    mask = np.ones(p.size, bool) if pnl_mask is None else np.asarray(pnl_mask, bool)
    g = None if group is None else np.asarray(group)[mask]
    pnl, sides = sign_strategy_pnl(p[mask], r[mask], g, fee_bp)
    return Metrics(information_coefficient(p, r), hit_rate(p, r), rmse(p, r), pnl, sides)


def compare(
    prediction: npt.ArrayLike,
    realized: npt.ArrayLike,
    last_return: npt.ArrayLike,
    group: npt.ArrayLike | None = None,
    pnl_mask: npt.ArrayLike | None = None,
    fee_bp: float = FEE_BP,
) -> Comparison:
    """The model against the zero and last-return baselines on the same rows."""
    r = np.asarray(realized, np.float64)
    mask = np.ones(r.size, bool) if pnl_mask is None else np.asarray(pnl_mask, bool)
    return Comparison(
        rows=int(r.size),
        pnl_rows=int(mask.sum()),
        model=score(prediction, r, group, mask, fee_bp),
        zero=score(np.zeros_like(r), r, group, mask, fee_bp),
        last=score(last_return, r, group, mask, fee_bp),
    )


def beats_baselines(
    report: Comparison, ic_margin: float | None = 0.0, pnl_margin: float | None = 0.0
) -> bool:
    """The evaluation gate: the model passes when, for every margin given (None skips that test),
    its IC exceeds the best baseline IC by more than ``ic_margin`` and its after-fee P&L exceeds
    the best baseline P&L by more than ``pnl_margin`` (log-return units). Both tests must pass;
    at least one margin must be given."""
    if ic_margin is None and pnl_margin is None:
        raise ValueError("give an IC margin, a P&L margin, or both")
    baselines = (report.zero, report.last)
    ok = True
    if ic_margin is not None:
        ok &= report.model.ic > max(b.ic for b in baselines) + ic_margin
    if pnl_margin is not None:
        ok &= report.model.pnl > max(b.pnl for b in baselines) + pnl_margin
    return bool(ok)
