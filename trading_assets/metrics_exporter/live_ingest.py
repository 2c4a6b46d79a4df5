"""How fresh the live partitions are, read from the Dagster instance when Prometheus scrapes.

The sidecar lands trades all day; the ``live_trades_landing`` sensor turns each sealed segment
into a ``live_trades_ingest`` run that rewrites today's day × symbol partition of bronze, silver,
bars_1s and features, about once a minute. The live partition of a symbol is the newest of its
day partitions that has a materialization: today's, or yesterday's until today's first pickup
(so the lag does not jump at midnight). Per asset and symbol this collector reports when that
partition was last materialized and how many seconds ago that was. When neither day has one, the
lag counts from the start of yesterday (UTC): the partition has gone without ingest at least
that long, and the series is there for an alert to fire on.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import dagster as dg
from prometheus_client.core import GaugeMetricFamily, Metric

from trading_assets.defs.ingest.partitions import partition_key

log = logging.getLogger(__name__)

LIVE_INGEST_ASSETS = ("bronze_trades", "silver_trades", "bars_1s", "features", "cross_features")
"""The assets a live pickup run (``live_trades_ingest``) materializes, in run order."""
LOOKBACK_DAYS = 2
"""Today's partition and yesterday's."""


class LiveIngestCollector:
    """``trading_asset_last_materialization_timestamp_seconds`` and
    ``trading_live_partition_ingest_lag_seconds`` per live-ingest asset and symbol, plus
    ``trading_dagster_instance_up`` (0 when the instance could not be read)."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        symbols: Sequence[str],
        assets: Sequence[str] = LIVE_INGEST_ASSETS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instance = instance
        self.symbols = tuple(symbols)
        self.assets = tuple(assets)
        self._clock = clock
        self._lock = threading.Lock()  # one scrape at a time reads the instance

    def collect(self) -> Iterator[Metric]:
        """The series as the instance holds them now."""
        stamps, lags, up, took = _families()
        now = self._clock()
        started = time.perf_counter()
        try:
            with self._lock:
                newest = {
                    (asset, symbol): self.newest_materialization(asset, symbol, now)
                    for asset in self.assets
                    for symbol in self.symbols
                }
        except Exception as error:  # an outage of its database: say so, once a scrape
            log.warning("could not read the Dagster instance: %s", error)
            up.add_metric([], 0.0)
        else:
            up.add_metric([], 1.0)
            since = _day_start(now, LOOKBACK_DAYS - 1)
            for (asset, symbol), stamp in newest.items():
                if stamp is not None:
                    stamps.add_metric([asset, symbol], stamp)
                lags.add_metric([asset, symbol], max(0.0, now - (stamp or since)))
        took.add_metric([], time.perf_counter() - started)
        yield from (stamps, lags, up, took)

    def describe(self) -> Iterator[Metric]:
        """The series' names, without reading the instance."""
        yield from _families()

    def newest_materialization(self, asset: str, symbol: str, now: float) -> float | None:
        """When the symbol's live partition of ``asset`` was last materialized (Unix seconds),
        or None when neither today's nor yesterday's partition has been."""
        for days_back in range(LOOKBACK_DAYS):
            day = dt.datetime.fromtimestamp(now, dt.UTC).date() - dt.timedelta(days=days_back)
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=dg.AssetKey(asset),
                    asset_partitions=[str(partition_key(day, symbol))],
                ),
                limit=1,
            ).records
            if records:
                return records[0].timestamp
        return None


def _families() -> tuple[GaugeMetricFamily, ...]:
    labels = ["asset", "symbol"]
    return (
        GaugeMetricFamily(
            "trading_asset_last_materialization_timestamp_seconds",
            "When the symbol's live partition (today's, else yesterday's) of a live-ingest "
            "asset was last materialized, Unix seconds",
            labels=labels,
        ),
        GaugeMetricFamily(
            "trading_live_partition_ingest_lag_seconds",
            "Seconds since the symbol's live partition of a live-ingest asset was last "
            "materialized (at least since yesterday 00:00 UTC when neither day has been)",
            labels=labels,
        ),
        GaugeMetricFamily(
            "trading_dagster_instance_up",
            "1 when the exporter read the Dagster instance at this scrape, 0 when it failed",
        ),
        GaugeMetricFamily(
            "trading_exporter_instance_read_seconds",
            "Seconds this scrape spent reading the Dagster instance",
        ),
    )


def _day_start(now: float, days_back: int) -> float:
    """00:00 UTC ``days_back`` days before the day of ``now``, as Unix seconds."""
    day = dt.datetime.fromtimestamp(now, dt.UTC).date() - dt.timedelta(days=days_back)
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
