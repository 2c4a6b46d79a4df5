"""``python -m streaming``: run the sidecar (see ``--help``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from streaming.app import Sidecar
from streaming.config import SidecarConfig, parse_args
from streaming.landing.shipper import needs_shipping


async def serve(config: SidecarConfig) -> None:
    """Run a sidecar until SIGTERM or SIGINT, then shut it down gracefully."""
    location = config.landing_uri
    shipping = location is not None and needs_shipping(config.landing_root, location)
    sidecar = Sidecar(config, landing_uri=location if shipping else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, sidecar.stop)
    await sidecar.run()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Feast notes every registry refresh at INFO, several in the same millisecond at start.
    logging.getLogger("feast.infra.registry.registry").setLevel(logging.WARNING)
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
