"""Binance's bulk-file host (data.binance.vision, or the simulator speaking its layout)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import httpx
from pydantic import Field

from trading_assets.lib.lakehouse.bulk import (
    NoBulkFilesError,
    ProgressCallback,
    RawFile,
    bulk_symbol,
    download_daily_trades,
)
from trading_assets.lib.lakehouse.pipeline import Lakehouse
from trading_assets.lib.settings import DEFAULT_BULK_BASE_URL


class BinanceBulkResource(dg.ConfigurableResource):
    """Downloads daily trade zips: verified against their published sha256, checked as zips
    holding the day's trade rows, and stored only then (a bad file raises BadBulkFileError)."""

    base_url: str = Field(
        default=DEFAULT_BULK_BASE_URL,
        description="https://data.binance.vision, the simulator's URL, or file:// for a mirror.",
    )
    timeout_seconds: float = 120.0

    def fetch_daily_trades(
        self,
        lake: Lakehouse,
        instrument: str,
        day: dt.date,
        on_progress: ProgressCallback | None = None,
    ) -> RawFile:
        """The day's file of ``instrument``; NoBulkFilesError for a venue that publishes none."""
        symbol = bulk_symbol(instrument)
        if symbol is None:
            raise NoBulkFilesError(f"{instrument}: its venue publishes no daily trade files")
        timeout = httpx.Timeout(self.timeout_seconds, connect=10.0)
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            return download_daily_trades(
                self.base_url, symbol, day, lake.raw_root, lake.io, on_progress, client
            )
