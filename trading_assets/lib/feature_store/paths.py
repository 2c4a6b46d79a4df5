"""Where the Feast repository and its offline data live.

Feast resolves every relative path (registry, sqlite online store, file sources) against the
store's ``repo_path``. The definitions always live in ``feature_repo/``; the data root (the
``repo_path`` handed to Feast) defaults to the same folder, so ``feast`` run inside
``feature_repo/`` and Dagster see one store, and tests point it at a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

from trading_assets.lib.settings import PROJECT_ROOT, load_settings

FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"
DEFINITION_MODULES = ("entities", "data_sources", "feature_views", "feature_services")
"""The Python files of the repository, in dependency order."""

YAML_BY_ENVIRONMENT = {"local": "feature_store.yaml", "prod": "feature_store.prod.yaml"}

GOLD_FEATURES_FOLDER = "features"
"""Folder of the gold feature export (one parquet file per day × symbol) under the offline root."""
BOOK_FEATURES_FOLDER = "book"
CROSS_FEATURES_FOLDER = "cross"
"""Folder of the gold cross-feature export (one parquet file per day × own instrument)."""
DEPTH_FEATURES_FOLDER = "depth"
"""Folder of the gold depth-feature export (one parquet file per day × instrument)."""


def offline_root() -> str:
    """Offline data root: relative (to the data root) by default, an absolute path or URI in
    production (``FEAST_OFFLINE_ROOT``, e.g. ``s3://bucket/feast/offline``)."""
    return load_settings().feast_offline_root


def resolve(data_root: str | Path, path: str) -> str:
    """A path as Feast resolves it: URIs and absolute paths as they are, others under the root."""
    if "://" in path or Path(path).is_absolute():
        return path
    return str(Path(data_root) / path)
