"""Live pickup as the daemon drives it: segments landed by the sidecar's ``LandingWriter``, the
``live_trades_landing`` sensor evaluated with its cursor carried between ticks, and its requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from streaming.landing import TRADES_KIND, LandingWriter
from streaming.records import Trade
from trading_assets.defs.ingest.landing import (
    LandingResource,
    live_trades_landing,
    run_partition_keys,
)
from trading_assets.defs.ingest.partitions import trade_partitions

DAY = dt.date(2024, 3, 1)
SECOND = 1_000_000_000


def day_start_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * SECOND


def newest_day() -> dt.date:
    """Today: the newest partition the definitions offer, the one the sidecar's trades fill."""
    days = trade_partitions.get_partitions_def_for_dimension("date")
    return dt.date.fromisoformat(days.get_last_partition_key() or "")


def trade(trade_id: int, symbol: str = "BTCUSDT", day: dt.date = DAY) -> Trade:
    trade_ns = day_start_ns(day) + trade_id * 7_000_000
    return Trade(
        symbol=symbol,
        trade_id=trade_id,
        price=f"{60000 + trade_id % 50}.{trade_id % 100:02d}000000",
        quantity=f"0.{trade_id % 997 + 1:05d}000",
        is_buyer_maker=trade_id % 3 == 0,
        trade_ns=trade_ns,
        event_ns=trade_ns + 1_000_000,
        receive_ns=trade_ns + 3_000_000,
    )


def land(root: Path, *segments: Iterable[Trade]) -> list[str]:
    """Land each batch as its own sealed segment, as the sidecar's rotation does; their stems."""
    stems: list[str] = []
    with LandingWriter(root, TRADES_KIND, flush_every_s=3600, rotate_every_s=3600) as writer:
        for batch in segments:
            for record in batch:
                writer.write(record)
            stems += [path.name.removesuffix(".jsonl") for path in writer.rotate()]
    return stems


class Sensor:
    """Evaluates the sensor against one instance, carrying its cursor like the daemon does."""

    def __init__(self, instance: dg.DagsterInstance, root: Path | str) -> None:
        self.instance, self.root, self.cursor = instance, root, None

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"landing": LandingResource(root=str(self.root))},
        )
        result = live_trades_landing(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor
        return result


def covered(request: dg.RunRequest) -> list[str]:
    """The partitions a requested run covers: its partition, or each of its range."""
    if request.partition_key is not None:
        return [str(request.partition_key)]
    return run_partition_keys(request.tags)


def requested(result: dg.SensorResult) -> dict[str, dg.RunRequest]:
    """Each partition the tick asked for, with the request that covers it."""
    return {key: request for request in result.run_requests or [] for key in covered(request)}
