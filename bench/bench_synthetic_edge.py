"""The synthetic market's planted edge, measured through the project's own chain.

Per market seed: one synthetic day of BTCUSDT and ETHUSDT (200k trades a day each, the
simulator's default), the simulator's bulk files → bronze → silver → 1 s bars → trades-only
features and the 60 s label, one row per symbol every 10 s (as training sets are sampled) → the
4-fold purged walk-forward of the XGBoost model. Reported next to the oracle that sees the latent
drift (``DayTape.expected_forward_return``), on the same out-of-sample rows:

* IC: linear (Pearson; the oracle's is the ceiling of any forecast) and rank (Spearman, as the
  gate scores it), the model's share of the oracle's, and the IC's one-sided p-value;
* P&L after costs of the trading rule (trade when the predicted 60 s return exceeds 2 × 10 bp
  fees + the assumed 1 bp spread), next to the last-return baseline's and the oracle's own;
* a permutation test: the model's rank IC against walk-forwards on shuffled labels;
* the same with the edge off (``edge=0``): the model's IC and the gate's verdict;
* generation time of a ~200k-trade day (tape, and tape + bulk zip), edge on and off.
No assertions: the tests in ``tests/integration/test_synthetic_edge.py`` hold the claims.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

import numpy as np
from scipy import stats

DAY = dt.date(2024, 3, 1)
SYMBOLS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT")  # instrument ids
SEEDS = tuple(range(1, 11))
NO_EDGE_SEEDS = tuple(range(1, 11))
SHUFFLES = 39
TRADES_PER_DAY = 200_000


def edge_row(seed: int, edge: float) -> dict[str, float]:
    """One seed's out-of-sample scores of the model and the oracle."""
    from streaming.simulator.synthetic import SyntheticMarket
    from tests.synthetic_edge import (
        LABEL,
        ORACLE,
        PREDICTED,
        linear_ic,
        out_of_sample,
        training_rows,
    )
    from trading_assets.lib.models.evaluation import LAST_RETURN, pnl_rows
    from trading_assets.lib.models.metrics import beats_baselines, compare

    market = SyntheticMarket(seed=seed, trades_per_day=TRADES_PER_DAY, edge=edge)
    tested = out_of_sample(training_rows(market, SYMBOLS, [DAY]))
    realized = tested[LABEL].to_numpy()
    args = (
        realized,
        tested[LAST_RETURN].to_numpy(),
        tested["instrument"].to_numpy(),
        pnl_rows(tested, dt.timedelta(seconds=60)),
    )
    model, oracle = (
        compare(tested[PREDICTED].to_numpy(), *args),
        compare(tested[ORACLE].to_numpy(), *args),
    )
    model_linear = linear_ic(tested[PREDICTED], realized)
    oracle_linear = linear_ic(tested[ORACLE], realized)
    return {
        "seed": seed,
        "oracle_ic": oracle_linear,
        "model_ic": model_linear,
        "share": model_linear / oracle_linear if oracle_linear else float("nan"),
        "oracle_rank_ic": oracle.model.ic,
        "model_rank_ic": model.model.ic,
        "rank_share": model.model.ic / oracle.model.ic if oracle.model.ic else float("nan"),
        "p_value": model.model.ic_p_value,
        "pnl_bp": model.model.pnl * 1e4,
        "sides": model.model.trades,
        "last_pnl_bp": model.last.pnl * 1e4,
        "oracle_pnl_bp": oracle.model.pnl * 1e4,
        "gate": float(beats_baselines(model)),
    }


def permutation(seed: int) -> tuple[float, list[float]]:
    """The model's pooled rank IC and those of walk-forwards on shuffled labels."""
    from streaming.simulator.synthetic import SyntheticMarket
    from tests.synthetic_edge import EMBARGO, FEATURES, LABEL, PARAMS, training_rows
    from trading_assets.lib.models.evaluation import walk_forward

    rows = training_rows(SyntheticMarket(seed=seed, trades_per_day=TRADES_PER_DAY), SYMBOLS, [DAY])

    def ic(shuffle: int | None) -> float:
        report = walk_forward(rows, FEATURES, LABEL, PARAMS, embargo=EMBARGO, shuffle_seed=shuffle)
        return report.pooled.model.ic

    return ic(None), [ic(k * 1000) for k in range(SHUFFLES)]


def generation_seconds(edge: float) -> tuple[int, float, float]:
    """Trades of the day nearest 200k in early 2024, best of 3: tape, tape + bulk zip."""
    from streaming.simulator.synthetic import SyntheticMarket

    probe = SyntheticMarket(trades_per_day=TRADES_PER_DAY)
    days = [DAY + dt.timedelta(days=i) for i in range(60)]
    day = min(days, key=lambda d: abs(probe.trade_count("BTCUSDT", d) - TRADES_PER_DAY))
    tapes, totals = [], []
    for _ in range(3):
        market = SyntheticMarket(trades_per_day=TRADES_PER_DAY, edge=edge)
        started = time.perf_counter()
        market.tape("BTCUSDT", day)
        tapes.append(time.perf_counter() - started)
        market.day_trades_csv_zip("BTCUSDT", day)
        totals.append(time.perf_counter() - started)
    return probe.trade_count("BTCUSDT", day), min(tapes), min(totals)


def _table(rows: list[dict[str, float]], columns: list[str]) -> None:
    print("  ".join(f"{c:>13}" for c in columns))
    for row in rows:
        print("  ".join(_cell(row[c]) for c in columns))
    summary = {c: statistics.median(r[c] for r in rows) for c in columns if c != "seed"}
    print("  ".join(f"{'median':>13}" if c == "seed" else _cell(summary[c]) for c in columns))


def _cell(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:>13.0f}"
    if abs(value) < 1e-3:
        return f"{value:>13.1e}"
    return f"{value:>13.3f}"


def main() -> None:
    columns = ["seed", "oracle_ic", "model_ic", "share", "oracle_rank_ic", "model_rank_ic"]
    columns += ["rank_share", "p_value", "pnl_bp", "sides", "last_pnl_bp", "oracle_pnl_bp", "gate"]
    print(f"edge on: one day ({DAY}) × {', '.join(SYMBOLS)}, out-of-sample rows of 4 folds")
    _table([edge_row(seed, 1.0) for seed in SEEDS], columns)

    observed, controls = permutation(SEEDS[0])
    p_value = (1 + sum(c >= observed for c in controls)) / (1 + len(controls))
    print(
        f"\npermutation (seed {SEEDS[0]}): model rank IC {observed:.4f}; {SHUFFLES} shuffled-label "
        f"walk-forwards: mean {np.mean(controls):+.4f}, sd {np.std(controls):.4f}, "
        f"max {max(controls):+.4f}; p-value {p_value:.3f}"
    )

    print("\nedge off (edge=0): the same chain")
    no_edge = ["seed", "model_ic", "model_rank_ic", "p_value", "pnl_bp", "sides", "gate"]
    flat = [edge_row(seed, 0.0) for seed in NO_EDGE_SEEDS]
    _table(flat, no_edge)
    joint = stats.combine_pvalues([r["p_value"] for r in flat], method="fisher")
    joint_p = float(joint.pvalue)  # pyright: ignore[reportAttributeAccessIssue]
    print(f"Fisher's combination of the {len(flat)} IC p-values: {joint_p:.3f}")

    print("\ngeneration of one BTCUSDT day (best of 3)")
    print(f"{'edge':>6}  {'trades':>8}  {'tape s':>8}  {'tape+zip s':>10}")
    for edge in (1.0, 0.0):
        trades, tape_s, total_s = generation_seconds(edge)
        print(f"{edge:>6.1f}  {trades:>8}  {tape_s:>8.3f}  {total_s:>10.3f}")


if __name__ == "__main__":
    main()
