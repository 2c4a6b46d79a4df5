"""Real klines across price regimes: the model reads no level feature, and still trains and scores.

BTCUSDT and ETHUSDT traded 3 to 20 times higher in April–May 2021 than in May–June 2020, so every
2021 level (vwap) lies outside the range a 2020 model saw, while its scale-free inputs do not.
The out-of-sample ICs with and without levels are a measurement, printed by
``python -m bench scale_free``; here only what must hold whatever they come out as.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from bench.bench_scale_free import (
    LABEL,
    PERIODS,
    POOLED,
    SYMBOLS,
    level_inputs,
    model_inputs,
    out_of_sample,
    period_frame,
)
from trading_assets.lib.features import is_level_feature
from trading_assets.lib.models import DEFAULT_PARAMS, train_full

TREES = 30
# One thread: the tests share two cores with other jobs, where OpenMP threads wait on each other.
PARAMS = DEFAULT_PARAMS | {"nthread": 1}


@pytest.fixture(scope="module")
def periods(shared_data: Path) -> dict[str, pl.DataFrame]:
    spot = shared_data / "binance" / "klines" / "spot"
    return {period: period_frame(spot, period) for period in PERIODS}


def test_every_2021_level_lies_outside_the_2020_range_the_model_would_have_learnt(periods):
    # Arrange
    train, test = periods["2020"], periods["2021"]

    # Act / Assert: per symbol, the lowest 2021 vwap is above the highest 2020 one
    for symbol in SYMBOLS:
        for level in (name for name in level_inputs() if is_level_feature(name)):
            seen = train.filter(pl.col("instrument") == symbol)[level].max()
            later = test.filter(pl.col("instrument") == symbol)[level].min()
            assert isinstance(seen, float) and isinstance(later, float)
            assert later > seen, (symbol, level)


def test_a_2020_model_reads_no_level_trains_and_scores_the_2021_minutes(periods):
    # Arrange
    train, test = periods["2020"], periods["2021"]
    names = model_inputs()

    # Act
    model = train_full(train, names, LABEL, PARAMS, n_trees=TREES, n_folds=2)
    scored = out_of_sample(train, test, names, trees=TREES, threads=1)

    # Assert: the old inputs are refused; the new ones are the price group without its levels
    with pytest.raises(ValueError, match="level features"):
        train_full(train, level_inputs(), LABEL, PARAMS, n_trees=TREES, n_folds=2)
    assert set(level_inputs()) - set(names) == {"vwap_300s", "vwap_900s", "vwap_3600s"}
    assert model.feature_names == tuple(names) and model.trees == TREES
    assert model.training_rows == train.height and max(model.importance_gain.values()) > 0
    assert scored.level_gain == 0.0 and scored.test_rows == test.height > 130_000
    assert set(scored.ic) == {POOLED, *SYMBOLS} and all(map(math.isfinite, scored.ic.values()))
