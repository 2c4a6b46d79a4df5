"""Opening a venue's WebSocket connection, with handshake rejections made explicit.

Keepalive: Binance pings every 20 s and drops a connection that has not answered within a
minute. ``websockets`` answers pings by itself while the connection is open, whatever the
reader is doing; our own pings (``ping_interval_s``) additionally detect a dead peer.
"""

from __future__ import annotations

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

RATE_LIMITED_STATUSES = (418, 429)
MAX_FRAME_BYTES = 1 << 24  # Coinbase's level2 snapshot of BTC-USD is ~5 MB
MAX_QUEUED_FRAMES = 4096  # read-side buffer while the feed is busy (e.g. gap-filling)


class HandshakeRejected(Exception):
    """The server refused the WebSocket upgrade with an HTTP status (429 / 418: rate limited)."""

    def __init__(self, status: int, retry_after_s: float | None) -> None:
        super().__init__(f"WebSocket handshake rejected with HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def rate_limited(self) -> bool:
        """True for 429 (too many requests) and 418 (banned for ignoring 429s)."""
        return self.status in RATE_LIMITED_STATUSES


def _retry_after_s(error: InvalidStatus) -> float | None:
    try:
        return max(0.0, float(error.response.headers.get("Retry-After", "")))
    except ValueError:
        return None


async def open_stream(
    url: str,
    open_timeout_s: float = 10.0,
    ping_interval_s: float = 20.0,
    ping_timeout_s: float = 20.0,
) -> ClientConnection:
    """Connect to ``url``; raises HandshakeRejected for an HTTP refusal of the upgrade."""
    try:
        return await websockets.connect(
            url,
            open_timeout=open_timeout_s,
            ping_interval=ping_interval_s,
            ping_timeout=ping_timeout_s,
            close_timeout=2.0,
            max_size=MAX_FRAME_BYTES,
            max_queue=MAX_QUEUED_FRAMES,
        )
    except InvalidStatus as error:
        raise HandshakeRejected(error.response.status_code, _retry_after_s(error)) from error
