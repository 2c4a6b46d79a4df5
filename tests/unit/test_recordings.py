"""The recording reader keeps every frame, byte for byte, with exact receive times."""

from __future__ import annotations

import gzip

import pytest

from streaming.recordings import read_recording, seconds_to_ns


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1617566591.326123", 1_617_566_591_326_123_000), ("1.5", 1_500_000_000), ("7", 7 * 10**9)],
)
def test_seconds_to_ns_is_exact(text, expected):
    assert seconds_to_ns(text) == expected


def test_hftbacktest_layout_keeps_payload_bytes_and_times(shared_data):
    path = shared_data / "binance/ws/btcusdt_20240808.txt.gz"
    with gzip.open(path, "rb") as handle:
        lines = [line.rstrip(b"\n") for line in handle if line.strip()]

    frames = list(read_recording(path))

    assert len(frames) == len(lines)
    for line, frame in zip(lines, frames, strict=True):
        stamp, payload = line.split(b" ", 1)
        assert frame.receive_ns == int(stamp)
        assert frame.payload == payload
    rest = [frame for frame in frames if frame.is_rest]
    assert [frame.source for frame in rest] == ["/api/v3/depth"]


def test_cryptofeed_layout_separates_rest_from_stream_frames(shared_data):
    path = shared_data / "binance/ws/cryptofeed_binance_20210404.txt.gz"
    with gzip.open(path, "rb") as handle:
        lines = [line for line in handle if line.strip()]
    connect_markers = sum(b" <-> " in line for line in lines)

    frames = list(read_recording(path))

    assert len(frames) == len(lines) - connect_markers
    rest = [frame for frame in frames if frame.is_rest]
    assert {frame.source.split("symbol=")[1].split("&")[0] for frame in rest} == {
        "BTCUSDT",
        "ETHUSDT",
        "DOTUSDT",
    }
    assert all(frame.payload.startswith(b'{"lastUpdateId"') for frame in rest)
    assert all(frame.payload.startswith(b'{"stream"') for frame in frames if not frame.is_rest)
