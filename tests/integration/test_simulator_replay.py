"""Recorded Binance sessions replayed through the simulator come back byte for byte, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from streaming.recordings import read_recording
from streaming.simulator.server import SimulatorServer
from streaming.venues.binance.client import AsyncBinanceRestClient, BinanceStreamClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
READ_TIMEOUT_S = 60


def recorded_ws_frames(paths: list[Path]) -> list[bytes]:
    return [f.payload for p in paths for f in read_recording(p) if not f.is_rest]


def stream_names(frames: list[bytes]) -> list[str]:
    return sorted({json.loads(frame)["stream"] for frame in frames})


async def collect(client: BinanceStreamClient) -> list[bytes]:
    async def read_all() -> list[bytes]:
        return [payload async for _, payload in client]

    return await asyncio.wait_for(read_all(), READ_TIMEOUT_S)


@pytest.fixture
def btcusdt_session(shared_data: Path) -> list[Path]:
    ws = shared_data / "binance" / "ws"
    return [ws / "btcusdt_20240808.txt.gz", ws / "btcusdt_20240809.txt.gz"]


@pytest.fixture
def cryptofeed_session(shared_data: Path) -> list[Path]:
    return [shared_data / "binance" / "ws" / "cryptofeed_binance_20210404.txt.gz"]


@pytest.mark.parametrize("session", ["btcusdt_session", "cryptofeed_session"])
async def test_combined_stream_replays_every_frame_byte_for_byte(
    session: str, request: pytest.FixtureRequest
) -> None:
    paths: list[Path] = request.getfixturevalue(session)
    expected = recorded_ws_frames(paths)
    simulator = SimulatorServer(replay=paths, speed=0, close_when_replay_done=True)

    async with (
        simulator as sim,
        BinanceStreamClient(sim.ws_url, stream_names(expected)) as client,
    ):
        received = await collect(client)

    assert len(received) == len(expected)
    assert received == expected


async def test_raw_streams_carry_exactly_the_recorded_data_parts(
    cryptofeed_session: list[Path],
) -> None:
    recorded = recorded_ws_frames(cryptofeed_session)
    names = stream_names(recorded)
    simulator = SimulatorServer(
        replay=cryptofeed_session,
        speed=0,
        close_when_replay_done=True,
        replay_after_clients=len(names),
    )

    async with simulator as sim, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(BinanceStreamClient(sim.ws_url, [n], combined=False))
            for n in names
        ]
        received = await asyncio.gather(*(collect(client) for client in clients))

    for name, frames in zip(names, received, strict=True):
        expected = [f for f in recorded if json.loads(f)["stream"] == name]
        assert len(frames) == len(expected), name
        for frame, envelope in zip(frames, expected, strict=True):
            assert json.loads(frame) == json.loads(envelope)["data"]
            assert envelope == b'{"stream":"' + name.encode() + b'","data":' + frame + b"}"


async def test_recorded_depth_snapshot_is_served_by_rest(btcusdt_session: list[Path]) -> None:
    snapshot = next(f.payload for f in read_recording(btcusdt_session[0]) if f.is_rest)

    async with (
        SimulatorServer(replay=btcusdt_session, speed=0) as sim,
        AsyncBinanceRestClient(sim.http_url) as rest,
    ):
        body = await rest.depth("BTCUSDT", limit=1000)

    assert body == snapshot
