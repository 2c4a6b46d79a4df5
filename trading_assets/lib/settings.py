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


LOCAL_CATALOG_FILE = "iceberg_catalog.db"


def local_catalog(root: Path) -> tuple[str, str]:
    """URI and warehouse URI of the embedded Iceberg catalog under ``root`` (``make run``'s is
    ``<data dir>/iceberg``): a sqlite file, with a generous lock timeout since concurrent backfill
    runs and the sidecar share it, and a warehouse folder."""
    root = root.resolve()
    return f"sqlite:///{root / LOCAL_CATALOG_FILE}?timeout=60", (root / "warehouse").as_uri()


DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
DEFAULT_BULK_BASE_URL = "https://data.binance.vision"
DEFAULT_HISTORY_START = "2024-01-01"


def trading_symbols() -> list[str]:
    """Symbols to ingest, from ``TRADING_SYMBOLS`` (comma separated), upper case."""
    raw = os.environ.get("TRADING_SYMBOLS", "")
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()]
    return symbols or list(DEFAULT_SYMBOLS)


def bulk_base_url() -> str:
    """Base URL of Binance's bulk files; ``make run`` points ``BINANCE_BULK_BASE_URL`` at the
    simulator."""
    return os.environ.get("BINANCE_BULK_BASE_URL", "").strip() or DEFAULT_BULK_BASE_URL


def history_start_date() -> str:
    """First day offered as a partition (``TRADING_HISTORY_START``, YYYY-MM-DD)."""
    return os.environ.get("TRADING_HISTORY_START", "").strip() or DEFAULT_HISTORY_START
