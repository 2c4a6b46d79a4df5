"""Landing: the sidecar's durable, rotated segment files of raw ticks and predictions.

Dagster's ``live_trades`` sensor picks sealed trade segments up into bronze and silver; the
ingest restarts from :func:`resume_points` (each symbol's last landed trade, or where its run
began when none landed). On a filling disk :mod:`streaming.landing.guard` pauses market-data
landing and fetches the missed trades again once there is room. The layout is described in
:mod:`trading_assets.lib.lakehouse.landing`. When Dagster reads landing from elsewhere (an
``s3://`` landing location), :mod:`streaming.landing.shipper` uploads each sealed segment there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from streaming.landing.disk import LandingDiskFullError
from streaming.landing.process import LandingOutlet, LandingProcess, LandingProcessError
from streaming.landing.recovery import last_landed_trade_ids, recover_open_segments
from streaming.landing.run_starts import resume_points
from streaming.landing.writer import DEFAULT_TIME_FIELDS, LandingWriter, LandingWriterClosedError
from trading_assets.lib.lakehouse.landing_layout import (
    BOOK_SNAPSHOTS_KIND,
    BOOK_TICKERS_KIND,
    BOOK_UPDATES_KIND,
    PREDICTIONS_KIND,
    TRADES_KIND,
    default_landing_root,
)

__all__ = [
    "BOOK_SNAPSHOTS_KIND",
    "BOOK_TICKERS_KIND",
    "BOOK_UPDATES_KIND",
    "DEFAULT_TIME_FIELDS",
    "PREDICTIONS_KIND",
    "TRADES_KIND",
    "Landing",
    "LandingDiskFullError",
    "LandingOutlet",
    "LandingProcess",
    "LandingProcessError",
    "LandingWriter",
    "LandingWriterClosedError",
    "default_landing_root",
    "last_landed_trade_ids",
    "maintain",
    "recover_open_segments",
    "resume_points",
]
log = logging.getLogger(__name__)


class Landing(Protocol):
    """What :func:`maintain` drives: a ``LandingWriter`` or a ``LandingProcess``."""

    def poll(self) -> None: ...

    def close(self) -> None: ...


async def maintain(writers: Iterable[Landing], interval_s: float = 0.25) -> None:
    """Flush and rotate ``writers`` (built with ``inline_poll=False``) from a worker thread.

    fsync can take milliseconds; doing it in a thread keeps the event loop serving ticks. Runs
    until cancelled, then closes (seals) every writer. An in-process writer that finds its disk
    full (the predictions log, which lands on in the room market data leaves it) drops the
    records it could not write, keeps its whole ones, and goes on once there is room.
    """
    writers = list(writers)
    dropping: dict[int, int] = {}  # writer index → records dropped since its disk filled
    try:
        while True:
            for index, writer in enumerate(writers):
                dropped = await _poll(writer)
                if dropped:
                    if index not in dropping:
                        log.error("%s: records are dropped until there is room", dropped[1])
                    dropping[index] = dropping.get(index, 0) + dropped[0]
                elif index in dropping:
                    log.error("landing has room again: %d records were not landed (%s)",
                              dropping.pop(index), getattr(writer, "kind", writer))  # fmt: skip
            await asyncio.sleep(interval_s)
    finally:
        for writer in writers:
            await asyncio.to_thread(writer.close)


async def _poll(writer: Landing) -> tuple[int, LandingDiskFullError] | None:
    """Poll ``writer``; on a full disk, drop what it could not write: how many, and why."""
    try:
        await asyncio.to_thread(writer.poll)
    except LandingDiskFullError as error:
        if not isinstance(writer, LandingWriter):
            raise
        return await asyncio.to_thread(writer.drop_unwritten), error
    return None
