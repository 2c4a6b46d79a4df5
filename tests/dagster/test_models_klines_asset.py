"""Real BTCUSDT and ETHUSDT minutes through the full_model asset, as the 1 s training frame goes."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.unit.test_models_klines import FEATURES, LABEL, PARAMS, TREES, klines_frame
from trading_assets.defs.models.training import full_model
from trading_assets.lib.feature_store import spec
from trading_assets.lib.feature_store.training import write_training_frame
from trading_assets.lib.models import artifacts as files
from trading_assets.lib.models import train_full
from trading_assets.resources import FeastResource, MlflowResource

FOLDS = 3


def test_full_model_asset_trains_on_real_klines_like_the_library(tmp_path, shared_data: Path):
    frame = klines_frame(shared_data)
    feast = FeastResource.local(tmp_path / "feast")
    write_training_frame(frame, feast.training_dir(), spec.TRAINING_SERVICE)
    mlflow = MlflowResource.local(tmp_path / "mlflow", tmp_path / "models")
    config = {"n_trees": TREES, "n_folds": FOLDS, "threads": 1, "label": LABEL}

    result = dg.materialize(
        [full_model],
        resources={"feast": feast, "mlflow": mlflow},
        run_config={"ops": {"full_model": {"config": config | {"features": FEATURES}}}},
    )

    (event,) = result.asset_materializations_for_node("full_model")
    meta = {key: value.value for key, value in event.metadata.items()}
    saved = files.load_model(mlflow.models_path() / files.FULL_FILE)
    direct = train_full(frame, FEATURES, LABEL, PARAMS, n_trees=TREES, n_folds=FOLDS)
    assert saved.report is not None and direct.report is not None
    assert meta["training_rows"] == frame.height
    assert saved.feature_names == tuple(FEATURES)
    # The asset is the library call: same rows, same out-of-sample scores.
    assert meta["model_ic"] == pytest.approx(direct.report.pooled.model.ic, abs=1e-12)
    assert saved.report.pooled.as_dict() == pytest.approx(direct.report.pooled.as_dict())
    assert len(saved.report.sample_predicted) == len(saved.report.sample_realized) > 1_000
    assert str(meta["predicted_vs_realized"]).startswith("![")
