"""The model chain as one job, so that a retrain can be launched from the CLI or the UI's
Launchpad and run like any queued run (``dagster job launch -j model_chain``)."""

import dagster as dg

model_chain = dg.define_asset_job(
    "model_chain",
    # The Feast registry and online store it trains from, then training set → full model →
    # newest rows → incremental model → ONNX (+ parity) → MLflow version (+ gate) → @challenger.
    selection=dg.AssetSelection.assets(
        "feast_registry",
        "online_features",
        "training_set",
        "full_model",
        "recent_training_rows",
        "incremental_model",
        "onnx_model",
        "registered_model",
        "challenger_model",
    ),
    description="Retrain now: the training set, full and incremental models, ONNX, MLflow, gate.",
)
