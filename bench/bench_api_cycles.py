"""Memory of a sidecar process under WebSocket churn on ``/predictions/stream``.

A whole sidecar (``python -m bench.bench_api_cycles --serve``, one :class:`Sidecar` on the
exchange simulator, predicting every 50 ms, no model: safe-mode records stream all the same)
serves ``CYCLES`` connect/close cycles, ``CONCURRENCY`` clients at a time. Each client offers
permessage-deflate (as browsers and the ``websockets`` library do), waits for one prediction
and closes; no client is left open at the end. The serving process's ``VmRSS`` is read from
``/proc`` before the first cycle and every ``SAMPLE_EVERY`` cycles, its ``VmHWM`` at the end.

Two rows, one run: the stream as it was (the server accepts the compression offer, so every
connection carries zlib state) and as it is (compression not negotiated). Growth per cycle is
the least-squares slope of RSS over the samples after the first ``SAMPLE_EVERY`` cycles (the
warm-up: first connections, first allocations). Nothing is asserted: the table is the result.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.harness import REPO_ROOT

SYMBOL = "BTCUSDT"
INSTRUMENT = f"BINANCE:{SYMBOL}"  # what the sidecar serves it as
CYCLES = 5_000
CONCURRENCY = 20
SAMPLE_EVERY = 1_000
PREDICT_EVERY_S = 0.05
START_TIMEOUT_S = 120.0


def status_mb(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    variance = sum((x - mean_x) ** 2 for x, _ in points)
    return covariance / variance


async def wait_until_streaming(base_url: str, process: subprocess.Popen[bytes]) -> None:
    """Until the child serves HTTP and has published a prediction."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the sidecar exited with {process.returncode}")
            try:
                async with http.get(f"{base_url}/predictions/latest") as response:
                    if response.status == 200 and INSTRUMENT in await response.json():
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError("the sidecar published no prediction in time")


async def churn(base_url: str, pid: int) -> list[tuple[int, float]]:
    """``CYCLES`` connect/receive/close cycles; RSS samples as (cycles done, MB)."""
    url = f"{base_url}/predictions/stream"
    samples = [(0, status_mb(pid, "VmRSS"))]
    started = finished = 0
    async with aiohttp.ClientSession() as http:

        async def client() -> None:
            nonlocal started, finished
            while started < CYCLES:
                started += 1
                async with http.ws_connect(url, compress=15) as ws:
                    await ws.receive_str(timeout=10)
                finished += 1
                if finished % SAMPLE_EVERY == 0 and finished < CYCLES:
                    samples.append((finished, status_mb(pid, "VmRSS")))

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        await asyncio.sleep(1.0)  # the server's side of the last closes
        async with http.get(f"{base_url}/metrics") as response:
            text = await response.text()
    open_clients = next(
        line.split()[-1] for line in text.splitlines() if line.startswith("sidecar_ws_clients ")
    )
    if float(open_clients) != 0:
        raise RuntimeError(f"{open_clients} stream clients still registered after the churn")
    samples.append((CYCLES, status_mb(pid, "VmRSS")))
    return samples


def measure(ws_url: str, rest_url: str, compress: bool) -> dict[str, float]:
    """One sidecar child through the churn; its RSS figures."""
    from tests.services import free_port

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-api-cycles-") as data:
        log_path = Path(data) / "sidecar.log"
        command = [
            sys.executable, "-m", "bench.bench_api_cycles", "--serve", "--ws", ws_url,
            "--rest", rest_url, "--data", data, "--port", str(port),
        ]  # fmt: skip
        if compress:
            command.append("--compress")
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=log)
        try:
            base_url = f"http://127.0.0.1:{port}"
            asyncio.run(wait_until_streaming(base_url, process))
            started = time.monotonic()
            samples = asyncio.run(churn(base_url, process.pid))
            elapsed = time.monotonic() - started
            peak = status_mb(process.pid, "VmHWM")
        except Exception:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    steady = [(x, y) for x, y in samples if x >= SAMPLE_EVERY]
    return {
        "before_mb": samples[0][1],
        "after_mb": samples[-1][1],
        "peak_mb": peak,
        "kb_per_cycle": slope(steady) * 1024,
        "seconds": elapsed,
    }


def main() -> None:
    from streaming.simulator.server import run_simulator_in_thread

    rows = []
    with run_simulator_in_thread(symbols=[SYMBOL], seed=11) as market:
        for label, compress in (("permessage-deflate (before)", True), ("no compression", False)):
            rows.append((label, measure(market.ws_url, market.http_url, compress)))
    print(
        f"sidecar process, {CYCLES} WebSocket connect/receive/close cycles, "
        f"{CONCURRENCY} clients at a time, each offering permessage-deflate"
    )
    header = (
        f"{'stream':<28} {'RSS before':>11} {'RSS after':>10} {'growth':>8} "
        f"{'KB/cycle':>9} {'VmHWM':>8} {'time':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, r in rows:
        print(
            f"{label:<28} {r['before_mb']:>8.1f} MB {r['after_mb']:>7.1f} MB "
            f"{r['after_mb'] - r['before_mb']:>+5.1f} MB {r['kb_per_cycle']:>9.1f} "
            f"{r['peak_mb']:>5.1f} MB {r['seconds']:>6.1f}s"
        )


async def serve(args: argparse.Namespace) -> None:
    """The child: a sidecar whose stream negotiates compression or not."""
    from streaming.app import Sidecar
    from streaming.config import SidecarConfig

    config = SidecarConfig(
        instruments=(INSTRUMENT,),
        ws_base_url=args.ws,
        rest_base_url=args.rest,
        data_root=Path(args.data),
        tracking_uri=None,
        api_port=args.port,
        predict_every_s=PREDICT_EVERY_S,
    )
    sidecar = Sidecar(config)
    sidecar.api.stream_compress = args.compress
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, sidecar.stop)
    await sidecar.run()


def child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--ws", required=True)
    parser.add_argument("--rest", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compress", action="store_true")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    if "--serve" in sys.argv[1:]:
        child_main(sys.argv[1:])
    else:
        main()
