"""Dagster resources, selected by TRADING_ENV (see trading_assets.lib.settings)."""

from __future__ import annotations

from typing import Any


def build_resources() -> dict[str, Any]:
    return {}
