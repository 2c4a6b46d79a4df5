"""The landing location as a Dagster resource, for the live pickup, the live metrics and the
rollout sensor (which refers to assets by name only, so it may not import the live pickup's
module)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from trading_assets.lib.lakehouse.landing_layout import (
    default_landing_location,
    is_remote,
    local_root,
)


class LandingResource(dg.ConfigurableResource):
    """Where the Dagster side reads the streaming sidecar's landed segments: its landing folder
    locally, the ``s3://`` prefix its shipper uploads sealed segments to in production."""

    root: str = Field(
        default_factory=default_landing_location,
        description=(
            "Landing location: a folder, or s3://bucket/prefix (default: TRADING_LANDING_URI, "
            "which locally is the landing folder, TRADING_LANDING_DIR)."
        ),
    )

    def location(self) -> str:
        """The location as readers take it: an absolute path, or the URI without a trailing
        ``/``."""
        if is_remote(self.root):
            return self.root.rstrip("/")
        return str(local_root(self.root).resolve())
