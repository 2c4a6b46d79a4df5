"""The landing folder as a Dagster resource, for the live pickup, the live metrics and the rollout
sensor (which refers to assets by name only, so it may not import the live pickup's module)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from trading_assets.lib.lakehouse.landing import default_landing_root


class LandingResource(dg.ConfigurableResource):
    """The streaming sidecar's landing folder (the same one its ``LandingWriter`` writes)."""

    root: str = Field(
        default_factory=lambda: str(default_landing_root()),
        description="Landing folder (default: TRADING_LANDING_DIR or <data dir>/landing).",
    )

    def root_path(self) -> Path:
        """The folder as an absolute path."""
        return Path(self.root).resolve()
