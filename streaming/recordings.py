"""Reader for recorded exchange sessions (gzip text, one frame a line).

Two line layouts are understood:

* ``<receive ns> <raw json>`` (hftbacktest recordings). A REST depth snapshot is a line whose JSON
  starts with ``{"lastUpdateId"``.
* cryptofeed's ``<unix seconds>: <raw json>`` for WebSocket frames, ``<url> -> <seconds>: <json>``
  for REST responses and ``<url> <-> <seconds>`` for the connect marker (skipped).

The payload is kept byte for byte as the exchange sent it, so replays can be compared exactly.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WS = "ws"


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded message: when it arrived, its exact bytes, and where it came from."""

    receive_ns: int
    payload: bytes
    source: str  # "ws" for stream frames, else the REST path (e.g. "/api/v3/depth?symbol=...")

    @property
    def is_rest(self) -> bool:
        """True for a REST response, False for a WebSocket frame."""
        return self.source != WS


def seconds_to_ns(text: str) -> int:
    """Exact conversion of a decimal seconds string (no float rounding)."""
    whole, _, frac = text.strip().partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _parse_line(line: bytes) -> RecordedFrame | None:
    line = line.rstrip(b"\r\n")
    if not line:
        return None
    if line[:1].isdigit():
        head, sep, payload = line.partition(b" ")
        if head.endswith(b":"):  # cryptofeed websocket frame
            return RecordedFrame(seconds_to_ns(head[:-1].decode()), payload, WS)
        if not sep:
            raise ValueError(f"unrecognised recording line: {line[:80]!r}")
        source = "/api/v3/depth" if payload.startswith(b'{"lastUpdateId"') else WS
        return RecordedFrame(int(head), payload, source)
    if b" <-> " in line:  # connect marker
        return None
    url, sep, rest = line.partition(b" -> ")
    if not sep:
        raise ValueError(f"unrecognised recording line: {line[:80]!r}")
    stamp, _, payload = rest.partition(b": ")
    path = url.decode().split("://", 1)[-1]
    path = path[path.index("/") :] if "/" in path else path
    return RecordedFrame(seconds_to_ns(stamp.decode()), payload, path)


def read_recording(path: str | Path) -> Iterator[RecordedFrame]:
    """Yield every frame of a recording in file order."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line in handle:
            frame = _parse_line(line)
            if frame is not None:
                yield frame
