"""The full model reads model inputs only: a level feature (display only) is refused by name,
whether configured as a feature or served by the chosen feature service."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import polars as pl
import pytest

from trading_assets.defs.models.training import FullModelConfig, full_model, model_inputs
from trading_assets.lib import storage
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.training import write_training_frame
from trading_assets.lib.features import feature_names, label_names, level_feature_names
from trading_assets.lib.models import artifacts as files
from trading_assets.resources import FeastResource, MlflowResource

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
ROWS = 200


def frame_with_every_trades_feature() -> pl.DataFrame:
    """A training frame holding every trades-only feature, the levels too (as v1 frames did)."""
    rng = np.random.default_rng(0)
    names = feature_names(spec.FEATURE_CONFIG, spec.SERVICES["signal_trades_v1"])
    value, sign = label_names(spec.FEATURE_CONFIG)
    times = [START + dt.timedelta(seconds=10 * i) for i in range(ROWS)]
    y = rng.normal(scale=1e-3, size=ROWS)
    return pl.DataFrame({name: rng.normal(size=ROWS) for name in names}).with_columns(
        pl.Series(spec.ENTITY, ["BINANCE:BTCUSDT"] * ROWS),
        pl.Series(spec.TIMESTAMP_FIELD, times),
        pl.Series(value, y),
        pl.Series(sign, np.sign(y).astype(np.int8)),
        pl.Series("label_end", [t + dt.timedelta(seconds=60) for t in times]),
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's message and its causes' (the asset's own error is the cause)."""
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error, messages = failure.step_failure_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


@pytest.mark.parametrize(
    "config",
    [
        {"features": ["mom_60s", "vwap_60s"]},
        {"feature_service": "signal_trades_v1"},
    ],
    ids=["configured-level", "level-service"],
)
def test_full_model_refuses_a_level_feature_and_trains_nothing(tmp_path, config):
    # Arrange: frames under both services' names, each holding the levels
    feast = FeastResource.local(tmp_path / "feast")
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
    for service in ("signal_trades_v1", spec.TRAINING_SERVICE):
        write_training_frame(frame_with_every_trades_feature(), feast.training_dir(), service)

    # Act
    result = dg.materialize(
        [full_model],
        resources={"feast": feast, "mlflow": mlflow},
        run_config={"ops": {"full_model": {"config": config}}},
        raise_on_error=False,
    )

    # Assert
    assert not result.success
    message = failure_message(result)
    assert "vwap_60s" in message and "display" in message
    assert not storage.exists(mlflow.model_location(files.FULL_FILE))


def test_the_default_service_gives_every_trades_feature_but_the_levels():
    # Arrange
    frame = frame_with_every_trades_feature()

    # Act
    chosen = model_inputs(frame, FullModelConfig())

    # Assert
    assert chosen == spec.service_features(spec.TRAINING_SERVICE)
    levels = level_feature_names(spec.FEATURE_CONFIG)
    assert set(levels) <= set(frame.columns) and not set(levels) & set(chosen)
    assert "vwap_dev_60s" in chosen
