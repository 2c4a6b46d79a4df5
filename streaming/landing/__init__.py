"""Landing: the sidecar's durable, rotated segment files of raw ticks and predictions.

Dagster's ``live_trades`` sensor picks sealed trade segments up into bronze and silver; the
ingest restarts from :func:`last_landed_trade_ids`. The layout is described in
:mod:`trading_assets.lib.lakehouse.landing`. When Dagster reads landing from elsewhere (an
``s3://`` landing location), :mod:`streaming.landing.shipper` uploads each sealed segment there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from streaming.landing.process import LandingOutlet, LandingProcess, LandingProcessError
from streaming.landing.recovery import last_landed_trade_ids, recover_open_segments
from streaming.landing.writer import DEFAULT_TIME_FIELDS, LandingWriter, LandingWriterClosedError
from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_TICKERS_KIND,
    PREDICTIONS_KIND,
    TRADES_KIND,
    default_landing_root,
)

__all__ = [
    "BOOK_TICKERS_KIND",
    "DEFAULT_TIME_FIELDS",
    "PREDICTIONS_KIND",
    "TRADES_KIND",
    "Landing",
    "LandingOutlet",
    "LandingProcess",
    "LandingProcessError",
    "LandingWriter",
    "LandingWriterClosedError",
    "default_landing_root",
    "last_landed_trade_ids",
    "maintain",
    "recover_open_segments",
]


class Landing(Protocol):
    """What :func:`maintain` drives: a ``LandingWriter`` or a ``LandingProcess``."""

    def poll(self) -> None: ...

    def close(self) -> None: ...


async def maintain(writers: Iterable[Landing], interval_s: float = 0.25) -> None:
    """Flush and rotate ``writers`` (built with ``inline_poll=False``) from a worker thread.

    fsync can take milliseconds; doing it in a thread keeps the event loop serving ticks. Runs
    until cancelled, then closes (seals) every writer.
    """
    writers = list(writers)
    try:
        while True:
            for writer in writers:
                await asyncio.to_thread(writer.poll)
            await asyncio.sleep(interval_s)
    finally:
        for writer in writers:
            await asyncio.to_thread(writer.close)
