"""The rollout's evidence: a shadow and the champion are compared over the same ticks."""

from __future__ import annotations

import polars as pl

from sensors.rollout import gather_evidence
from trading_assets.lib.models.rollout_types import RegistryState, RolloutPolicy, Slot

S = 1_000_000_000
T0 = 1_764_000_000 * S
LOAD_DELAY_S = 10  # the sidecar serves the shadow this long after the alias moved


def scored_log() -> pl.DataFrame:
    """Champion v1 on every second from the move; shadow v2 from LOAD_DELAY_S on, predicting
    exactly what the champion does. Before the shadow loaded, the champion called the market
    backwards, which must not count against (or for) the shadow."""
    rows = []
    for k in range(120):
        realized = (-1) ** k * (1 + k % 7) * 1e-4
        champion = -realized if k < LOAD_DELAY_S else realized * 0.5 + (k % 3) * 1e-5
        tick = {"timestamp": T0 + k * S, "matured": True, "realized_return": realized,
                "is_error": False, "latency_ms": 1.0}  # fmt: skip
        rows.append(
            {**tick, "model_version": "1", "role": "champion", "predicted_return": champion}
        )
        if k >= LOAD_DELAY_S:
            rows.append(
                {**tick, "model_version": "2", "role": "shadow", "predicted_return": champion}
            )
    return pl.DataFrame(rows)


def test_the_champion_is_judged_over_the_shadows_own_ticks():
    log = scored_log()
    state = RegistryState(shadow=Slot("2", T0), champion=Slot("1", T0 - 3600 * S))

    _, evidence = gather_evidence(state, RolloutPolicy(), lambda start_ns: log, T0 + 200 * S)

    shadow, champion = evidence.shadow, evidence.champion_vs_shadow
    assert shadow is not None and champion is not None
    assert champion.first_ns == shadow.first_ns == T0 + LOAD_DELAY_S * S
    assert champion.matured == shadow.matured == 120 - LOAD_DELAY_S
    assert champion.ic == shadow.ic and champion.hit_rate == shadow.hit_rate
