"""``trading-sim`` / ``python -m streaming.simulator``: run the simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import signal
from collections.abc import Sequence

from streaming.recordings import RecordingError
from streaming.simulator.lead_lag import DEFAULT_VENUE_DELAYS_S, parse_venue_delay
from streaming.simulator.server import DEFAULT_LISTING_DATE, SimulatorServer
from streaming.simulator.synthetic import DEFAULT_EDGE

log = logging.getLogger("streaming.simulator")
_DEFAULTS = ", ".join(f"{venue}={s:g}" for venue, s in DEFAULT_VENUE_DELAYS_S.items())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(
        prog="trading-sim",
        description="Local exchange speaking Binance spot's public protocol, Binance USD-M "
        "futures' streams, Coinbase Advanced Trade's and Kraken's WebSockets.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT", help="comma separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trades-per-day", type=int, default=200_000)
    parser.add_argument(
        "--edge",
        type=_strength,
        default=DEFAULT_EDGE,
        help="strength of the synthetic market's planted, learnable drift episodes "
        "(1 = as documented, 0 = a pure random walk with nothing to learn)",
    )
    parser.add_argument(
        "--venue-delay",
        action="append",
        type=_venue_delay,
        default=[],
        metavar="VENUE=SECONDS",
        help="how far behind Binance spot a venue shows the tape (the planted lead-lag; "
        f"defaults: {_DEFAULTS}); repeat for several venues",
    )
    parser.add_argument(
        "--no-lead-lag",
        action="store_true",
        help="every venue shows the tape at once (then --venue-delay sets the only delays)",
    )
    parser.add_argument(
        "--listing-date",
        type=dt.date.fromisoformat,
        default=DEFAULT_LISTING_DATE,
        help="first day with history (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--replay", action="append", help="recorded session file; repeat for consecutive files"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed, 0 = max")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _strength(text: str) -> float:
    value = float(text)
    if not value >= 0.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"the edge strength must be ≥ 0, got {text}")
    return value


def _venue_delay(text: str) -> tuple[str, float]:
    try:
        return parse_venue_delay(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def venue_delays(args: argparse.Namespace) -> dict[str, float]:
    """Each venue's delay in seconds: the defaults (none with ``--no-lead-lag``), then each
    ``--venue-delay``."""
    delays = {} if args.no_lead_lag else dict(DEFAULT_VENUE_DELAYS_S)
    delays.update(args.venue_delay)
    return delays


async def serve(args: argparse.Namespace) -> None:
    """Run the simulator until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = SimulatorServer(
        host=args.host,
        port=args.port,
        symbols=[s.strip().upper() for s in args.symbols.split(",") if s.strip()],
        seed=args.seed,
        trades_per_day=args.trades_per_day,
        edge=args.edge,
        listing_date=args.listing_date,
        replay=args.replay,
        speed=args.speed,
        venue_delays_s=venue_delays(args),
    )
    async with server:
        log.info("REST and bulk files: %s", server.http_url)
        log.info("WebSocket streams:   %s/stream?streams=...  %s/ws/<stream>", *[server.ws_url] * 2)
        log.info("Coinbase WebSocket:  %s", server.coinbase_ws_url)
        log.info("USD-M futures:       %s/stream?streams=...", server.futures_ws_url)
        log.info("Kraken WebSocket v2: %s", server.kraken_ws_url)
        log.info("faults:              %s/_sim/faults (GET, POST JSON, DELETE)", server.http_url)
        log.info("venue delays (µs):   %s", server.venue_delays_us)
        await stop.wait()
        log.info("shutting down")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except RecordingError as error:  # a recording it cannot replay: one line naming it
        raise SystemExit(f"trading-sim: {error}") from None


if __name__ == "__main__":
    main()
