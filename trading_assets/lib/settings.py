"""The one place that reads the deployment environment (``TRADING_ENV``) and local paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Environment = Literal["local", "prod"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def trading_env() -> Environment:
    value = os.environ.get("TRADING_ENV", "local").strip().lower()
    if value not in ("local", "prod"):
        raise ValueError(f"TRADING_ENV must be 'local' or 'prod', got {value!r}")
    return value  # type: ignore[return-value]


def data_dir() -> Path:
    """Root for embedded state (Iceberg warehouse, catalog, landing files); git ignores it."""
    return Path(os.environ.get("TRADING_DATA_DIR", PROJECT_ROOT / "dagster_home" / "data"))
