"""Rollout and staleness sensors, merged into the code location by trading_assets.definitions.

Each module here exposes ``defs = dg.Definitions(...)``; :func:`sensor_definitions` merges them so
a new module only has to be listed in ``MODULES``.
"""

from __future__ import annotations

import importlib

import dagster as dg

MODULES: tuple[str, ...] = ("staleness", "rollout", "backtests")


def sensor_definitions() -> dg.Definitions:
    """Every sensor module's definitions, merged."""
    parts = [importlib.import_module(f"sensors.{name}").defs for name in MODULES]
    return dg.Definitions.merge(*parts) if parts else dg.Definitions()
