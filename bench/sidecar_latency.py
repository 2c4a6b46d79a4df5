"""Tick-to-prediction latency of a whole sidecar process fed by a recorded session over WebSocket.

Parent side (:func:`measure_latency`): the exchange simulator replays the recorded BTCUSDT and
ETHUSDT sessions, merged by receive time, at N× speed in a thread of the bench process; a real
redis-server is the Feast online store; an XGBoost model exported to ONNX is registered in MLflow
as @champion. Child side (``python -m bench.sidecar_latency ...``): one :class:`Sidecar` in its own
process (so its peak RSS is its own), predicting on bar close, instrumented as described in
:mod:`bench.bench_sidecar`; it prints one JSON line of results.

Three resident set sizes are reported, all peaks (``VmHWM``): ``peak_rss_mb`` is the serving
process (feed, features, online store, ONNX, API: everything on the tick path);
``watcher_peak_rss_mb`` is its model watcher child (:mod:`streaming.model_watcher`, the MLflow
client that mirrors the aliases to local files) and ``landing_peak_rss_mb`` its landing child
(:mod:`streaming.landing.process`), both read just before the sidecar shuts down.

The recorded exchange times (``E``, ``T``) are rewritten as the frames go out, onto the replay's
wall clock (compressed N× like the pacing), so feature ages and fallback levels behave as they
would live instead of seeing a two-year-old market. The first exchange time is anchored at the
moment its frame goes out: the recorder's clock ran 1.27 s behind Binance's, so anchoring on
receive times would put every event in the future. The bytes are otherwise the recording's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import heapq
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.harness import peak_rss_mb, process_peak_rss_mb, run_child
from streaming.recordings import RecordedFrame, read_recording
from streaming.simulator.binance.replay import RecordingReplay

SYMBOLS = ("BTCUSDT", "ETHUSDT")
INSTRUMENTS = tuple(f"BINANCE:{symbol}" for symbol in SYMBOLS)  # as the sidecar keys them
WARMUP_S = 5.0  # after the first champion prediction: model warm-up, first bars, first pushes
_EXCHANGE_TIME = re.compile(rb'"([ET])":(\d+)')


class WallClockReplay(RecordingReplay):
    """Several recordings merged by receive time, exchange times moved onto the wall clock."""

    def __init__(self, paths: Sequence[str | Path], speed: float) -> None:
        super().__init__(paths, speed)
        self._rewriting = False

    def frames(self) -> Iterator[RecordedFrame]:
        """Merged frames; once the replay runs, ``E``/``T`` follow the replay's own schedule."""
        merged = heapq.merge(
            *(read_recording(p) for p in self.paths), key=lambda frame: frame.receive_ns
        )
        if not self._rewriting:  # scan(): the bytes as recorded
            yield from merged
            return
        anchor: tuple[int, int] | None = None  # (wall ms, exchange ms) of the first stamped frame

        def shifted(match: re.Match[bytes]) -> bytes:
            nonlocal anchor
            if anchor is None:
                anchor = (time.time_ns() // 1_000_000, int(match[2]))
            moved = anchor[0] + (int(match[2]) - anchor[1]) / self.speed
            return b'"' + match[1] + b'":' + str(int(moved)).encode()

        for frame in merged:
            payload = _EXCHANGE_TIME.sub(shifted, frame.payload)
            yield RecordedFrame(frame.receive_ns, payload, frame.source)

    async def run(self, hub: Any, wait_for_clients: int, close_when_done: bool) -> None:
        """As :meth:`RecordingReplay.run`, with exchange times rewritten."""
        self._rewriting = True
        await super().run(hub, wait_for_clients, close_when_done)


def register_champion(tracking_uri: str, artifacts: Path) -> str:
    """A small XGBoost model over the service's features, exported to ONNX, @champion."""
    import numpy as np
    import xgboost as xgb

    from trading_assets.lib.feature_store.spec import TRAINING_SERVICE, service_features
    from trading_assets.lib.models.onnx_export import export_onnx
    from trading_assets.lib.models.registry import record_gate_verdict, register_model, set_alias

    names = service_features(TRAINING_SERVICE)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2_000, len(names))).astype(np.float32)
    y = (1e-3 * x[:, 0] + 1e-4 * rng.normal(size=2_000)).astype(np.float32)
    booster = xgb.train(
        {"max_depth": 6, "nthread": 1, "seed": 0},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=100,
    )
    day = dt.datetime(2024, 8, 1, tzinfo=dt.UTC)
    version = register_model(
        tracking_uri, "signal", export_onnx(booster, names), names, TRAINING_SERVICE,
        day, day + dt.timedelta(days=1), metrics={}, params={},
        artifact_location=artifacts.as_uri(),
    )  # fmt: skip
    record_gate_verdict(tracking_uri, "signal", version.version, True, "benchmark model")
    set_alias(tracking_uri, "signal", "champion", version.version)
    return str(version.version)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def measure_latency(
    recordings: Sequence[Path], speed: float, seconds: float, redis: str, work: Path
) -> dict[str, Any]:
    """Replay ``recordings`` at ``speed``× to a sidecar child for ``seconds``; its results."""
    from streaming.simulator.server import SimulatorServer, SimulatorThread

    data = work / f"data-{speed:g}x"
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    server = SimulatorServer(symbols=list(SYMBOLS), heartbeat_seconds=None)
    server.replay = WallClockReplay(recordings, speed)
    runner = SimulatorThread(server)
    runner.start()
    try:
        return run_child(
            "bench.sidecar_latency",
            "--ws", runner.ws_url, "--rest", runner.http_url, "--data", str(data),
            "--tracking", tracking, "--redis", redis, "--seconds", str(seconds),
        )  # fmt: skip
    finally:
        runner.stop()


async def _run_sidecar(args: argparse.Namespace) -> dict[str, Any]:
    from streaming.app import Sidecar
    from streaming.config import SidecarConfig
    from streaming.fallback import FallbackBudgets
    from tests.services import free_port

    config = SidecarConfig(
        instruments=INSTRUMENTS,
        ws_base_url=args.ws,
        rest_base_url=args.rest,
        data_root=Path(args.data),
        tracking_uri=args.tracking,
        redis_connection_string=args.redis,
        api_port=free_port(),
        model_poll_s=1.0,
        # Minutes of data fill only the shortest windows; serve them rather than wait.
        fallback_budgets=FallbackBudgets(min_coverage=0.0),
    )
    sidecar = Sidecar(config, predict_on_bar_close=True)
    samples: list[tuple[float, float, int, float]] = []  # latency ms, age s, level, predict ms
    tick: list[Any] = [None]
    started_ns: list[int] = []
    on_record, publish = sidecar.on_record, sidecar.hub.publish

    def timed_on_record(record: object) -> Any:
        tick[0] = record
        try:
            return on_record(record)
        finally:
            tick[0] = None

    def timed_publish(prediction: Any) -> None:
        publish(prediction)
        published_ns = time.time_ns()
        # Only bar-close predictions (made inside on_record) by the loaded champion count.
        if tick[0] is None or prediction.role != "champion" or not prediction.model_version:
            return
        if not started_ns:
            started_ns.append(published_ns)
        if published_ns - started_ns[0] < WARMUP_S * 1e9:
            return
        age = sidecar.decisions[prediction.symbol].age_s
        latency_ms = (published_ns - tick[0].receive_ns) / 1e6
        samples.append((latency_ms, age, prediction.fallback_level, prediction.latency_ms))

    sidecar.on_record = timed_on_record  # type: ignore[method-assign]
    sidecar.hub.publish = timed_publish  # type: ignore[method-assign]
    task = asyncio.create_task(sidecar.run())
    # Up to 2 min for process start, model load and first bars, then the measured span.
    deadline = time.monotonic() + 120.0 + WARMUP_S + args.seconds
    while time.monotonic() < deadline and not task.done():
        if started_ns and time.time_ns() - started_ns[0] >= (WARMUP_S + args.seconds) * 1e9:
            break
        await asyncio.sleep(0.2)
    watcher = sidecar.model_watcher
    watcher_pid = watcher.pid if watcher is not None else None
    watcher_rss = process_peak_rss_mb(watcher_pid) if watcher_pid is not None else 0.0
    landing_rss = process_peak_rss_mb(sidecar.landing.pid)
    sidecar.stop()
    await asyncio.wait_for(task, 60)
    if not samples:
        raise RuntimeError("no champion prediction on bar close was measured")
    latencies = [s[0] for s in samples]
    ages = [s[1] for s in samples]
    levels = [s[2] for s in samples]
    inside = [s[3] for s in samples]
    feed = sidecar.feeds.feeds.get("BINANCE") if sidecar.feeds is not None else None
    stats = feed.stats if feed is not None else None
    return {
        "predictions": len(samples),
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "predict_p50_ms": statistics.median(inside),
        "predict_p99_ms": percentile(inside, 0.99),
        "age_p50_s": statistics.median(ages),
        "age_p99_s": percentile(ages, 0.99),
        "online_share": levels.count(1) / len(levels),
        "frames": stats.frames_received if stats else 0,
        "peak_rss_mb": peak_rss_mb(),
        "watcher_peak_rss_mb": watcher_rss,
        "landing_peak_rss_mb": landing_rss,
        "watcher_restarts": watcher.restarts if watcher is not None else 0,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Child entry point: run one instrumented sidecar, print its results as JSON."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.sidecar_latency")
    for name in ("--ws", "--rest", "--data", "--tracking", "--redis"):
        parser.add_argument(name, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    print(json.dumps(asyncio.run(_run_sidecar(parser.parse_args(argv)))))


def standalone(recordings: Sequence[Path], speed: float, seconds: float) -> dict[str, Any]:
    """One measurement with its own redis-server and champion (for trying a single speed)."""
    from tests.services import redis_server

    with redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        register_champion(f"sqlite:///{work / 'mlflow.db'}", work / "artifacts")
        return measure_latency(recordings, speed, seconds, redis.connection_string, work)


if __name__ == "__main__":
    main(sys.argv[1:])
