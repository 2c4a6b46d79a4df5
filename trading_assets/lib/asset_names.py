"""Names of the asset graph's parts that code outside the asset modules refers to.

The sensors build ``dg.AssetKey(SILVER_TRADES)`` and target jobs by name instead of importing
the asset objects: an asset module loads its whole upstream graph, and a sensor needs only the
name. Plain strings keep lib Dagster-free. The definitions' test checks that each asset name here
is an asset of the code location, and each job name one of its jobs.
"""

from __future__ import annotations

SILVER_TRADES = "silver_trades"
"""Typed, deduplicated trades; its ``watermark`` says how far the landed live trades reached."""

ONLINE_FEATURES = "online_features"
"""The online store's newest rows; the staleness sensor records why it went stale here."""

SERVED_MODEL = "served_model"
"""The versions behind the serving aliases; each rollout move is one of its materializations."""

BACKTEST = "backtest"
"""A model version's replay on the rows after its training data (partitioned by version)."""

ASSET_NAMES = (SILVER_TRADES, ONLINE_FEATURES, SERVED_MODEL, BACKTEST)

MODEL_VERSIONS = "model_versions"
"""The dynamic partitions of the backtest: one per registered model version."""

STALENESS_REPAIR_JOB = "staleness_repair"
"""silver → bars_1s → features → online_features for one day × symbol."""

BACKTEST_JOB = "backtest_versions"
"""The backtest of one model version (a partition of ``model_versions``)."""

JOB_NAMES = (STALENESS_REPAIR_JOB, BACKTEST_JOB)
