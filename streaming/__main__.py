"""``python -m streaming``: run the sidecar (see ``--help``)."""

from __future__ import annotations

import asyncio
import logging
import sys

from streaming.app import serve
from streaming.config import parse_args


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
